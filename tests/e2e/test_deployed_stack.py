"""The integration test: the pipeline's promise checked on a deployed stack, local or on AWS.

By default it runs against the session's local stack, so `make test` keeps it honest. The CI
workflow's manual AWS job runs the same file with ``FILEGATE_IT_TARGET=aws``,
``FILEGATE_IT_STACK`` and ``AWS_REGION`` (credentials from the OIDC-assumed role): then it
talks to the real stack through the same ``StackRef`` the CLI uses, and waits longer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from filegate import stackref
from tests.e2e.conftest import Stack, wait_for

ON_AWS = os.environ.get("FILEGATE_IT_TARGET", "local") == "aws"
TIMEOUT = 90.0 if ON_AWS else 10.0


@dataclass
class Deployed:
    bucket: str
    table: str
    s3: Any
    ddb: Any

    def item(self, key: str) -> dict[str, Any] | None:
        found = self.ddb.get_item(
            TableName=self.table, Key={"s3_key": {"S": key}}, ConsistentRead=True
        )
        return found.get("Item")


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest) -> Iterator[Deployed]:
    if ON_AWS:
        ref = stackref.resolve(
            region=os.environ.get("AWS_REGION"),
            stack_name=os.environ.get("FILEGATE_IT_STACK"),
            target="aws",
        )
        yield Deployed(
            ref.output("BucketName"),
            ref.output("TableName"),
            ref.client("s3"),
            ref.client("dynamodb"),
        )
        return
    local: Stack = request.getfixturevalue("stack")
    yield Deployed(local.bucket, local.table, local.s3, local.ddb)


def test_upload_is_recorded_with_the_run_record_s_fields(deployed: Deployed) -> None:
    # GIVEN a fresh key under the integration prefix
    key = f"integration/{uuid.uuid4().hex}/report.csv"
    # WHEN it is uploaded to the bucket
    deployed.s3.put_object(
        Bucket=deployed.bucket, Key=key, Body=b"a,b\n1,2\n", ContentType="text/csv"
    )
    # THEN the ledger holds it with the fields the run record's readers read
    item = wait_for(lambda: deployed.item(key), timeout=TIMEOUT, interval=0.2)
    assert item["s3_key"]["S"] == key
    assert item["s3_bucket"]["S"] == deployed.bucket
    assert item["size"]["N"] == "8"
    assert item["content_type"]["S"] == "text/csv"
    assert item["processing_status"]["S"] == "RECEIVED"


def test_delete_is_recorded(deployed: Deployed) -> None:
    key = f"integration/{uuid.uuid4().hex}/gone.txt"
    deployed.s3.put_object(Bucket=deployed.bucket, Key=key, Body=b"x", ContentType="text/plain")
    wait_for(lambda: deployed.item(key), timeout=TIMEOUT, interval=0.2)
    deployed.s3.delete_object(Bucket=deployed.bucket, Key=key)

    def deleted() -> bool:
        item = deployed.item(key)
        return bool(item and item["processing_status"]["S"] == "DELETED")

    assert wait_for(deleted, timeout=TIMEOUT, interval=0.2)
