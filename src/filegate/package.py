"""Builds the Lambda deployment package (the zip), the same bytes for AWS and the local stack.

The zip holds the ingestion code (only the modules the Lambda imports) and the pure-Python
parts of its dependencies that the Lambda runtime does not provide. Native extensions are
left out on purpose: every vendored library has a pure-Python fallback (wrapt's is used when
its C extension is absent), so one zip serves arm64 on AWS and x86_64 locally.
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
    "filegate/uploads/page.html",
)
# Distributions vendored into the zip (the runtime provides boto3, botocore and their deps).
VENDORED = ("aws-lambda-powertools", "aws-xray-sdk", "wrapt", "typing-extensions")
# What the AWS Lambda Python runtime ships; the import test allows only these besides the zip.
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
        yield name.as_posix(), Path(str(dist.locate_file(item)))


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
