"""Builds the Lambda deployment package (the zip), the same bytes for AWS and the local stack.

The zip holds the Lambda code (only the modules the functions import) and the pure-Python
parts of every dependency, the AWS SDK included: the SDK the Python runtime ships varies by
region and date and is updated without notice, and a zip that carries part of the SDK's
dependency tree can mismatch it (AWS Lambda developer guide, "Working with .zip file archives
for Python Lambda functions" and "Best practices": "Control the dependencies in your function's
deployment package"). So the functions run the boto3/botocore every test runs, pinned in
constraints.txt; the zip comes first on Lambda's path, ahead of the runtime's copy. Of botocore's
(and boto3's) service data only the services the functions call are shipped (SDK_SERVICES):
27.7 MB unpacked becomes 9.3 MB, an 18.6 MB zip 2.7 MB.

Bytecode: every module in the zip ships with its ``__pycache__/<name>.cpython-3NN.pyc``, NN the
minor version of the template's Lambda Runtime (python3.12: cpython-312), compiled by an
interpreter of that version (``FILEGATE_BUILD_PYTHON``, else ``python3.NN`` on PATH) with
unchecked-hash invalidation (PEP 552): the runtime loads it without looking at the source, so
/var/task being read-only and the zip's fixed timestamps do not matter, and nothing is compiled
at a cold start (docs/benchmarks.md, "Cold start at its floor"). A .pyc of another minor version
is ignored by the runtime, so when no such interpreter is found the zip ships source only and
the build says so in one line (logged as a warning); ``Package.bytecode`` records which.
Compiling takes seconds, so compiled modules are kept in a cache (``BytecodeCache``).
Native extensions are left out on purpose: every vendored library has a pure-Python fallback
(wrapt's is used when its C extension is absent), so one zip serves arm64 on AWS and x86_64
locally.
The build is deterministic: fixed timestamps, sorted entries and bytecode compiled with a fixed
hash seed and the archive names as file names give the same CodeSha256 for the same sources
and interpreter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from filegate import settings
from filegate import template as cfn
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
    "filegate/quotas.py",
    "filegate/storage.py",
    "filegate/parts.py",
    "filegate/progress.py",
    "filegate/receipts.py",
    "filegate/signing.py",
    "filegate/ingest/",
    "filegate/publish/",
    "filegate/uploads/__init__.py",
    "filegate/uploads/partners.py",
    "filegate/uploads/requests.py",
    "filegate/uploads/service.py",
    "filegate/uploads/api.py",
    "filegate/uploads/expiry.py",
    "filegate/uploads/stale_metric.py",
    "filegate/uploads/page.html",
    # hash-wasm's SHA-256, which the upload API inlines into the page, and its license.
    "filegate/uploads/vendor/sha256.umd.min.js",
    "filegate/uploads/vendor/LICENSE-hash-wasm",
)
# The AWS SDK for Python and its whole dependency tree, shipped together or not at all.
SDK = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")
# Distributions vendored into the zip.
VENDORED = ("aws-lambda-powertools", "aws-xray-sdk", "wrapt", "typing-extensions", *SDK)
# The services the Lambda code makes clients for, and X-Ray, whose SDK makes a client for its
# sampling rules when Powertools' Tracer starts outside Lambda (on Lambda, LAMBDA_TASK_ROOT set,
# it samples locally): the only service data shipped. A client of any
# other service fails in the function (UnknownServiceError), locally as on AWS.
SDK_SERVICES = ("s3", "dynamodb", "events", "kms", "secretsmanager", "xray")
_SERVICE_DATA = (("botocore", "data"), ("boto3", "data"))
# What the AWS Lambda Python runtime ships (the local workers get it too, behind the zip).
RUNTIME_PROVIDED = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six")

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_SKIPPED_SUFFIXES = (".pyc", ".so", ".pyd", ".c", ".h")
_PYTHON_RUNTIME = re.compile(r"python3\.(\d+)")
_PROBE_TIMEOUT_SECONDS = 60
_COMPILE_TIMEOUT_SECONDS = 600
_PROBE = "import sys; print(sys.implementation.cache_tag, sys.executable)"
# Run by the build interpreter: (source, .pyc, name shown in tracebacks) triples on stdin. The
# archive name as the file name and a fixed hash seed (set sets are marshalled in hash order)
# make the .pyc bytes the same on every build.
_COMPILE = """
import json, py_compile, sys
for source, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(source, cfile, dfile, doraise=True, optimize=0,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Package:
    """A built zip, its Lambda-style CodeSha256 (base64 of the SHA-256) and the cache tag of
    the bytecode it ships (``cpython-312``), None when it ships source only."""

    path: Path
    sha256_hex: str
    size: int
    bytecode: str | None = None


@dataclass(frozen=True)
class Runtime:
    """The Lambda Python runtime the template's functions run on, e.g. ``python3.12``."""

    name: str

    @property
    def version(self) -> str:
        return self.name.removeprefix("python")

    @property
    def cache_tag(self) -> str:
        """What names its .pyc files (``sys.implementation.cache_tag``)."""
        return "cpython-" + self.version.replace(".", "")


def lambda_runtime(template: Mapping[str, Any] | None = None) -> Runtime:
    """The one Python runtime of the template's functions."""
    resources = (cfn.load() if template is None else template).get("Resources", {})
    runtimes = {
        str(resource.get("Properties", {}).get("Runtime"))
        for resource in resources.values()
        if resource.get("Type") == "AWS::Lambda::Function"
    }
    if len(runtimes) != 1 or not _PYTHON_RUNTIME.fullmatch(next(iter(runtimes))):
        raise PackageError(
            f"the template's functions name the runtimes {sorted(runtimes)}: one zip serves"
            " them all, so they must share one python3.N Runtime"
        )
    return Runtime(runtimes.pop())


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


def build_python(runtime: Runtime) -> tuple[str | None, str]:
    """The executable of an interpreter of ``runtime``'s version, or None and why not.

    FILEGATE_BUILD_PYTHON if set (an error when it is not of that version: it was asked for),
    else ``python3.NN`` on PATH. A pyenv shim of that name runs only the versions pyenv has
    selected, so it is asked for the runtime's version by name (PYENV_VERSION, which other
    interpreters ignore) and the executable it resolves to is returned.
    """
    configured = settings.build_python()
    command = configured or shutil.which(f"python{runtime.version}")
    if command is None:
        return None, f"no python{runtime.version} on PATH"
    tag, executable = _probe(command, runtime)
    if tag == runtime.cache_tag:
        return executable, ""
    found = f"{command} is {tag}" if tag else f"{command} does not start"
    if configured:
        raise PackageError(
            f"{settings.ENV_BUILD_PYTHON}={configured}: {found}, and the template's Runtime is"
            f" {runtime.name} ({runtime.cache_tag} bytecode): point it at a {runtime.name}"
            " interpreter or unset it"
        )
    return None, found


def _probe(command: str, runtime: Runtime) -> tuple[str, str]:
    """(cache tag, executable) of the interpreter ``command`` starts; ("", "") if none starts."""
    try:
        done = subprocess.run(
            [command, "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
            env=settings.interpreter_environment({"PYENV_VERSION": runtime.version}),
        )
    except (OSError, subprocess.TimeoutExpired):
        return "", ""
    found = done.stdout.split(maxsplit=1) if done.returncode == 0 else []
    return (found[0], found[1].strip()) if len(found) == 2 else ("", "")


def compile_bytecode(
    sources: Mapping[str, bytes], python: str, runtime: Runtime
) -> dict[str, bytes]:
    """The unchecked-hash .pyc of every ``*.py`` in ``sources`` (archive name: the bytes the
    zip ships), by archive name (``pkg/__pycache__/mod.cpython-312.pyc``): from the bytecode
    cache, the rest compiled by ``python`` in one process and added to the cache."""
    cache = BytecodeCache(settings.cache_dir() / "bytecode", python)
    wanted = {_cache_name(name, runtime): name for name in sources if name.endswith(".py")}
    cached = {pyc: cache.get(name, sources[name]) for pyc, name in wanted.items()}
    missing = {pyc: (name, sources[name]) for pyc, name in wanted.items() if not cached[pyc]}
    compiled = _compile(missing, python)
    for pyc, data in compiled.items():
        cache.put(wanted[pyc], sources[wanted[pyc]], data)
    return {**{pyc: data for pyc, data in cached.items() if data}, **compiled}


class BytecodeCache:
    """Compiled .pyc by (interpreter binary, archive name, source bytes): compiling the zip's
    662 modules takes seconds, and every build (each ``local up``, each test) has the same
    sources. The bytes are what the compiler writes for that key, so a hit changes nothing in
    the zip; a cache that cannot be written is skipped."""

    def __init__(self, root: Path, python: str) -> None:
        stat = Path(python).stat()
        self._root = root
        self._interpreter = f"{python}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()

    def _path(self, name: str, source: bytes) -> Path:
        key = hashlib.sha256(self._interpreter + name.encode() + b"\0" + source).hexdigest()
        return self._root / key[:2] / f"{key}.pyc"

    def get(self, name: str, source: bytes) -> bytes | None:
        try:
            return self._path(name, source).read_bytes()
        except OSError:
            return None

    def put(self, name: str, source: bytes, data: bytes) -> None:
        path = self._path(name, source)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a concurrent build reads all of it or nothing
        except OSError:
            logger.debug("bytecode cache %s not writable", self._root)


def _compile(jobs: Mapping[str, tuple[str, bytes]], python: str) -> dict[str, bytes]:
    """``{pyc name: (archive name, source bytes)}`` compiled by ``python`` in one process,
    from those bytes (written to a scratch file), so the .pyc is of exactly what is shipped."""
    if not jobs:
        return {}
    with tempfile.TemporaryDirectory(prefix="filegate-pyc-") as work:
        triples = {}
        for index, (pyc, (name, source)) in enumerate(jobs.items()):
            scratch = Path(work) / f"{index}.py"
            scratch.write_bytes(source)
            triples[pyc] = (str(scratch), str(scratch.with_suffix(".pyc")), name)
        done = subprocess.run(
            [python, "-S", "-W", "ignore", "-c", _COMPILE],
            input=json.dumps(list(triples.values())),
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT_SECONDS,
            check=False,
            env=settings.interpreter_environment({"PYTHONHASHSEED": "0"}),
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PackageError(f"{python} could not compile the package's bytecode: {last}")
        return {pyc: Path(cfile).read_bytes() for pyc, (_, cfile, _) in triples.items()}


def _cache_name(name: str, runtime: Runtime) -> str:
    path = PurePosixPath(name)
    return str(path.parent / "__pycache__" / f"{path.stem}.{runtime.cache_tag}.pyc")


def _bytecode(sources: Mapping[str, bytes]) -> tuple[dict[str, bytes], str | None]:
    runtime = lambda_runtime()
    python, why_not = build_python(runtime)
    if python is None:
        logger.warning(
            "the Lambda package ships no bytecode (%s; set %s to a %s interpreter): %s compiles"
            " every module at each cold start",
            why_not,
            settings.ENV_BUILD_PYTHON,
            runtime.name,
            runtime.name,
        )
        return {}, None
    return compile_bytecode(sources, python, runtime), runtime.cache_tag


def build(out: Path) -> Package:
    """Write the deployment zip to ``out`` and return its digest; it ships the runtime's
    bytecode when an interpreter of the runtime's version is found."""
    sources = {name: path.read_bytes() for name, path in iter_package_files()}
    compiled, tag = _bytecode(sources)
    contents = {**sources, **compiled}
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(contents.items()):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    data = out.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return Package(path=out, sha256_hex=digest, size=len(data), bytecode=tag)
