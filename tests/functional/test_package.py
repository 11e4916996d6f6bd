"""The deployment zip imports its handler with nothing but itself and the Lambda runtime."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from filegate import package
from filegate.local.runtime import runtime_packages_dir


def test_zip_imports_handler_with_only_its_contents_and_runtime_packages(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    code = tmp_path / "code"
    zipfile.ZipFile(built.path).extractall(code)
    runtime = runtime_packages_dir(tmp_path)
    # -I -S: no site-packages, no PYTHONPATH; sys.path is the stdlib, the zip and the runtime.
    probe = (
        "import sys, importlib.util;"
        f"sys.path[:0] = [{str(code)!r}, {str(runtime)!r}];"
        "import filegate.ingest.handler as h;"
        "assert callable(h.lambda_handler);"
        "assert importlib.util.find_spec('moto') is None;"
        "assert importlib.util.find_spec('typer') is None;"
        "print(h.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"DDB_TABLE": "t", "AWS_REGION": "eu-central-1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(code))


def test_zip_holds_the_lambda_code_and_no_native_or_operator_code(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    names = zipfile.ZipFile(built.path).namelist()
    assert "filegate/ingest/handler.py" in names
    assert "aws_lambda_powertools/__init__.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyc"))]
    assert not [n for n in names if n.startswith(("filegate/cli/", "filegate/local/", "boto3/"))]


def test_build_is_reproducible(tmp_path: Path) -> None:
    first = package.build(tmp_path / "a.zip")
    second = package.build(tmp_path / "b.zip")
    assert first.sha256_hex == second.sha256_hex
