"""The zip ships the Lambda runtime's bytecode, and the runtime imports from it, compiling nothing.

The template's Runtime is python3.12; a .pyc is used only by the minor version that wrote it,
so these tests need a 3.12 interpreter (``package.build_python``: FILEGATE_BUILD_PYTHON, else
``python3.12`` on PATH, a pyenv shim included). CI's container (python:3.12-bookworm) and the
development machine's image (pyenv's 3.12.1) both have one; they skip, saying so, only where
none exists.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from filegate import package, settings
from filegate.errors import PackageError

RUNTIME = package.lambda_runtime()
PYTHON, WHY_NOT = package.build_python(RUNTIME)
needs_runtime_python = pytest.mark.skipif(
    PYTHON is None, reason=f"no {RUNTIME.name} interpreter on this machine ({WHY_NOT})"
)
EVENTS = Path(__file__).resolve().parents[1] / "events"
# The handler imported and one s3:TestEvent handled, as the first invocation of a cold
# container; then which of the zip's modules were loaded, and from what.
INVOKE = """
import json, sys
sys.path[:0] = [sys.argv[1]]
import filegate.ingest.handler as h
class Context:
    function_name = "filegate-ingest"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    def get_remaining_time_in_millis(self): return 60000
result = h.lambda_handler(json.loads(sys.argv[2]), Context())
loaded = {
    name: getattr(module, "__cached__", None)
    for name, module in list(sys.modules.items())
    if (getattr(module, "__file__", None) or "").startswith(sys.argv[1])
}
print(json.dumps({"result": result, "loaded": loaded, "cache_tag": sys.implementation.cache_tag}))
"""
LAMBDA_ENV = {
    "DDB_TABLE": "ledger",
    "UPLOAD_BUCKET": "uploads",
    "AWS_REGION": "eu-central-1",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "PATH": "/usr/bin:/bin",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> package.Package:
    return package.build(tmp_path_factory.mktemp("zip") / "lambda.zip")


def test_the_runtime_is_the_templates() -> None:
    assert RUNTIME.name == "python3.12"
    assert RUNTIME.cache_tag == "cpython-312"


def test_one_zip_needs_one_python_runtime_across_the_functions() -> None:
    def function(runtime: str) -> dict[str, object]:
        return {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": runtime}}

    two = {"Resources": {"A": function("python3.12"), "B": function("python3.13")}}
    other = {"Resources": {"A": function("nodejs20.x")}}

    for template in (two, other):
        with pytest.raises(PackageError, match=r"must share one python3\.N Runtime"):
            package.lambda_runtime(template)
    assert package.lambda_runtime({"Resources": {"A": function("python3.13")}}).cache_tag == (
        "cpython-313"
    )


@needs_runtime_python
def test_every_module_in_the_zip_ships_its_unchecked_hash_pyc(built: package.Package) -> None:
    archive = zipfile.ZipFile(built.path)
    names = set(archive.namelist())
    sources = {n for n in names if n.endswith(".py")}
    compiled = {n for n in names if n.endswith(".pyc")}

    assert built.bytecode == "cpython-312"
    expected = {
        f"{Path(n).parent.as_posix()}/__pycache__/{Path(n).stem}.cpython-312.pyc" for n in sources
    }
    assert compiled == {e.removeprefix("./") for e in expected}
    flags = {int.from_bytes(archive.read(n)[4:8], "little") for n in compiled}
    assert flags == {0b01}  # hash-based, source not checked (PEP 552)


@needs_runtime_python
def test_the_runtime_imports_the_handler_from_the_shipped_bytecode(
    built: package.Package, tmp_path: Path
) -> None:
    # GIVEN the zip unpacked read-only, every .py replaced by code that fails if it runs: only
    # a module loaded from its unchecked-hash .pyc (the source never read) can import
    code = tmp_path / "code"
    zipfile.ZipFile(built.path).extractall(code)
    for source in code.rglob("*.py"):
        source.write_text(f"raise ImportError('compiled from source: {source.name}')\n")
    for path in [*code.rglob("*"), code]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    event = (EVENTS / "sqs_test_event.json").read_text()

    # WHEN python3.12 imports the handler and handles an s3:TestEvent, writing no bytecode
    try:
        done = subprocess.run(
            [str(PYTHON), "-I", "-S", "-B", "-c", INVOKE, str(code), event],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=LAMBDA_ENV,
        )
    finally:
        for path in [code, *code.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    # THEN it answers, and every module of the zip it loaded came from its cpython-312 .pyc
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["result"] == {"batchItemFailures": []}
    assert found["cache_tag"] == "cpython-312"
    assert {"filegate.ingest.handler", "boto3", "botocore.client"} <= set(found["loaded"])
    assert all(str(c).endswith(".cpython-312.pyc") for c in found["loaded"].values())


@needs_runtime_python
def test_bytecode_builds_are_reproducible_compiled_afresh_or_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.ENV_CACHE_HOME, str(tmp_path / "first"))
    first = package.build(tmp_path / "first.zip")
    monkeypatch.setenv(settings.ENV_CACHE_HOME, str(tmp_path / "second"))
    second = package.build(tmp_path / "second.zip")  # compiled again, by another process
    cached = package.build(tmp_path / "cached.zip")  # every module from the cache

    assert first.bytecode == second.bytecode == cached.bytecode == "cpython-312"
    assert first.sha256_hex == second.sha256_hex == cached.sha256_hex
    entries = list((tmp_path / "second" / "filegate" / "bytecode").rglob("*.pyc"))
    modules = [n for n in zipfile.ZipFile(cached.path).namelist() if n.endswith(".py")]
    assert len(entries) == len(modules)


def test_without_an_interpreter_of_the_runtime_the_zip_ships_source_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(settings.ENV_BUILD_PYTHON, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.12 on it
    caplog.set_level(logging.WARNING, logger="filegate.package")

    built = package.build(tmp_path / "lambda.zip")

    names = zipfile.ZipFile(built.path).namelist()
    assert built.bytecode is None
    assert "filegate/ingest/handler.py" in names
    assert not [n for n in names if n.endswith(".pyc")]
    assert [r.getMessage() for r in caplog.records] == [
        "the Lambda package ships no bytecode (no python3.12 on PATH; set FILEGATE_BUILD_PYTHON"
        " to a python3.12 interpreter): python3.12 compiles every module at each cold start"
    ]


def test_a_build_python_of_another_version_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an interpreter as the build sees one: it answers the probe with its cache tag
    other = tmp_path / "python3.11"
    other.write_text("#!/bin/sh\necho cpython-311 /usr/bin/python3.11\n")
    other.chmod(0o755)
    monkeypatch.setenv(settings.ENV_BUILD_PYTHON, str(other))

    with pytest.raises(
        PackageError, match=r"FILEGATE_BUILD_PYTHON=.* is cpython-311, .* python3\.12"
    ):
        package.build(tmp_path / "lambda.zip")
    assert not (tmp_path / "lambda.zip").exists()


def test_the_package_command_says_whether_the_zip_ships_bytecode(tmp_path: Path) -> None:
    arguments = ["package", "--out", str(tmp_path / "lambda.zip"), "--output", "json"]

    def package_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from filegate.cli import main; main()", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=settings.child_environment(extra=env),
        )

    source_only = package_command({"PATH": str(tmp_path), settings.ENV_BUILD_PYTHON: ""})
    refused = package_command({settings.ENV_BUILD_PYTHON: "/nonexistent/python"})

    assert source_only.returncode == 0, source_only.stderr
    assert json.loads(source_only.stdout)["bytecode"] == "none (source only)"
    assert source_only.stderr.strip().startswith("the Lambda package ships no bytecode")
    assert len(source_only.stderr.strip().splitlines()) == 1
    assert refused.returncode == 2
    assert (
        "FILEGATE_BUILD_PYTHON=/nonexistent/python: /nonexistent/python does not start"
        in " ".join(refused.stderr.split())
    )
    assert "Traceback" not in refused.stderr
