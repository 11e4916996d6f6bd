"""The deployment zip runs its handlers with nothing but itself: the AWS SDK is in it, pinned.

The SDK a Lambda runtime ships varies by region and date; the zip carries the one every test
runs, and only the service data of the services the functions call.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from filegate import package

# Both functions' collaborators built (their SDK clients made, a URL presigned) from the zip
# alone: -I -S means no site-packages and no PYTHONPATH, so sys.path is the stdlib and the zip.
PROBE = """
import importlib.util, json, sys
sys.path[:0] = [sys.argv[1]]
import boto3, botocore
import filegate.ingest.handler as ingest
import filegate.uploads.api as api
ingest.build_ingestor()
service = api.build_service()
url = boto3.client("s3").generate_presigned_url(
    "put_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
)
print(json.dumps({
    "handler": ingest.__file__,
    "boto3": [boto3.__version__, boto3.__file__],
    "botocore": [botocore.__version__, botocore.__file__],
    "moto": importlib.util.find_spec("moto") is not None,
    "typer": importlib.util.find_spec("typer") is not None,
    "signed": "X-Amz-Signature=" in url,
}))
"""
LAMBDA_ENV = {
    "DDB_TABLE": "ledger",
    "PARTNERS_TABLE": "partners",
    "UPLOAD_BUCKET": "uploads",
    "AWS_REGION": "eu-central-1",  # Lambda sets both
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "PATH": "/usr/bin:/bin",
}


def test_zip_runs_both_functions_with_only_its_contents_and_the_pinned_sdk(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    code = tmp_path / "code"
    zipfile.ZipFile(built.path).extractall(code)

    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=LAMBDA_ENV,
    )

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["handler"].startswith(str(code))
    for name in ("boto3", "botocore"):
        version, location = found[name]
        assert version == metadata.version(name)
        assert location.startswith(str(code))
    assert found["moto"] is False
    assert found["typer"] is False
    assert found["signed"] is True


def test_only_the_service_data_of_the_services_the_functions_call_is_shipped(
    tmp_path: Path,
) -> None:
    names = zipfile.ZipFile(package.build(tmp_path / "lambda.zip").path).namelist()

    services = {
        n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2
    }

    assert services == set(package.SDK_SERVICES)
    assert "botocore/data/endpoints.json" in names
    assert "botocore/data/partitions.json" in names


def test_every_client_the_lambda_code_makes_is_of_a_shipped_service() -> None:
    called = set()
    for archive_name, source in package.iter_package_files():
        if archive_name.startswith("filegate/") and archive_name.endswith(".py"):
            called |= set(re.findall(r"\bclient\(\s*[\"']([a-z0-9-]+)[\"']", source.read_text()))

    assert called
    assert called <= set(package.SDK_SERVICES)


def test_a_client_of_a_service_not_shipped_fails_in_the_function(tmp_path: Path) -> None:
    code = tmp_path / "code"
    zipfile.ZipFile(package.build(tmp_path / "lambda.zip").path).extractall(code)
    probe = "import sys; sys.path[:0] = [sys.argv[1]]; import boto3; boto3.client('sqs')"

    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=LAMBDA_ENV,
    )

    assert done.returncode == 1
    assert "UnknownServiceError" in done.stderr


def test_zip_holds_the_lambda_code_and_no_native_or_operator_code(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    names = zipfile.ZipFile(built.path).namelist()
    assert "filegate/ingest/handler.py" in names
    assert "aws_lambda_powertools/__init__.py" in names
    assert not [n for n in names if n.endswith(".so")]
    # bytecode only of the runtime's version (test_package_bytecode.py)
    assert not [n for n in names if n.endswith(".pyc") and ".cpython-312." not in n]
    assert "boto3/__init__.py" in names
    assert not [n for n in names if n.startswith(("filegate/cli/", "filegate/local/", "moto/"))]


def test_build_is_reproducible(tmp_path: Path) -> None:
    first = package.build(tmp_path / "a.zip")
    second = package.build(tmp_path / "b.zip")
    assert first.sha256_hex == second.sha256_hex
