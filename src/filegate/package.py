"""Builds the Lambda deployment package (the zip), the same bytes for AWS and the local stack.

The zip holds the Lambda code (only the modules the functions import) and the pure-Python
parts of every dependency, the AWS SDK included: the SDK the Python runtime ships varies by
region and date and is updated without notice, and a zip that carries part of the SDK's
dependency tree can mismatch it (AWS Lambda developer guide, "Working with .zip file archives
for Python Lambda functions" and "Best practices": "Control the dependencies in your function's
deployment package"). So the functions run the boto3/botocore every test runs, pinned in
constraints.txt; the zip comes first on Lambda's path, ahead of the runtime's copy. Of botocore's
(and boto3's) service data only the services the functions call are shipped (SDK_SERVICES):
27.7 MB unpacked becomes 9.3 MB, an 18.6 MB zip 2.7 MB. The zip ships no bytecode (it would
have to be cpython-312's), so the SDK is compiled at each cold start (docs/benchmarks.md).
Native extensions are left out on purpose: every vendored library has a pure-Python fallback
(wrapt's is used when its C extension is absent), so one zip serves arm64 on AWS and x86_64
locally.
The build is deterministic: fixed timestamps and sorted entries give the same CodeSha256.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from filegate.errors import PackageError

HANDLER = "filegate.ingest.handler.lambda_handler"

# filegate modules the Lambda functions import, and the files they read (a directory entry
# takes its *.py files only); nothing from cli/, local/ or ops/.
LAMBDA_MODULES = (
    "filegate/__init__.py",
    "filegate/errors.py",
    "filegate/settings.py",
    "filegate/events.py",
    "filegate/ledger.py",
    "filegate/storage.py",
    "filegate/ingest/",
    "filegate/uploads/__init__.py",
    "filegate/uploads/partners.py",
    "filegate/uploads/requests.py",
    "filegate/uploads/service.py",
    "filegate/uploads/api.py",
    "filegate/uploads/expiry.py",
    "filegate/uploads/stale_metric.py",
    "filegate/uploads/page.html",
)
# The AWS SDK for Python and its whole dependency tree, shipped together or not at all.
SDK = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")
# Distributions vendored into the zip.
VENDORED = ("aws-lambda-powertools", "aws-xray-sdk", "wrapt", "typing-extensions", *SDK)
# The services the Lambda code makes clients for, and X-Ray, whose SDK makes a client for its
# sampling rules when Powertools' Tracer starts outside Lambda (on Lambda, LAMBDA_TASK_ROOT set,
# it samples locally): the only service data shipped. A client of any
# other service fails in the function (UnknownServiceError), locally as on AWS.
SDK_SERVICES = ("s3", "dynamodb", "xray")
_SERVICE_DATA = (("botocore", "data"), ("boto3", "data"))
# What the AWS Lambda Python runtime ships (the local workers get it too, behind the zip).
RUNTIME_PROVIDED = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six")

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_SKIPPED_SUFFIXES = (".pyc", ".so", ".pyd", ".c", ".h")


@dataclass(frozen=True)
class Package:
    """A built zip and its Lambda-style CodeSha256 (base64 of the SHA-256)."""

    path: Path
    sha256_hex: str
    size: int


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _filegate_files() -> Iterator[tuple[str, Path]]:
    root = _source_root()
    for entry in LAMBDA_MODULES:
        path = root / entry
        if not path.exists():
            raise PackageError(f"the Lambda module {entry} is missing under {root}")
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            yield file.relative_to(root).as_posix(), file


def _vendored_files(distribution: str) -> Iterator[tuple[str, Path]]:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise PackageError(
            f"{distribution} is not installed: run `make` to set up the venv, then build again"
        ) from exc
    for item in dist.files or ():
        name = PurePosixPath(str(item))
        if name.parts[0].endswith((".dist-info", "..")) or name.parts[0] == "..":
            continue
        if name.suffix in _SKIPPED_SUFFIXES or "__pycache__" in name.parts:
            continue
        if _unused_service_data(name):
            continue
        yield name.as_posix(), Path(str(dist.locate_file(item)))


def _unused_service_data(name: PurePosixPath) -> bool:
    """A file under botocore/data/<service>/ (or boto3's) of a service the functions never call."""
    parts = name.parts
    return len(parts) > 3 and parts[:2] in _SERVICE_DATA and parts[2] not in SDK_SERVICES


def iter_package_files() -> Iterator[tuple[str, Path]]:
    """Every (archive name, source file) that goes into the zip, filegate first."""
    yield from _filegate_files()
    for distribution in VENDORED:
        yield from _vendored_files(distribution)


def build(out: Path) -> Package:
    """Write the deployment zip to ``out`` and return its digest."""
    entries = sorted(dict(iter_package_files()).items())
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    data = out.read_bytes()
    return Package(path=out, sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))
