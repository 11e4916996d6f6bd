"""The function roles' IAM in the local twin (local/iam.py), as AWS authorises their calls.

moto's app, wrapped in the middleware, is served in this process; the roles are the template's
own (their policies resolved for this test's names); their sessions are issued as the local
stack issues them (``RoleSessions``: STS AssumeRole, recorded in the principals file). Every
request is real HTTP from boto3. The DynamoDB emulator process is started as the stack starts
it, to show that it checks the same sessions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from filegate import template as cfn
from filegate.aws import Target
from filegate.local.emulator import application
from filegate.local.iam import (
    ENV_PRINCIPALS,
    PRINCIPALS_FILE,
    PolicyEvaluator,
    RoleSessions,
)
from filegate.local.processes import free_port, terminate, wait_listening
from filegate.settings import EmulatorSettings

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "iam-uploads"
FOREIGN = "iam-foreign"
LEDGER = "iam-ledger"
PARTNERS = f"{LEDGER}-partners"
NAMES = {
    "BucketName": BUCKET,
    "DynamoTableName": LEDGER,
    "LambdaName": "iam-fn",
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
}
SIGV4 = Config(signature_version="s3v4")
ARNS = {
    "LedgerTable": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{LEDGER}",
    "PartnersTable": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PARTNERS}",
    "IngestQueue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:iam-queue",
    "QueueKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
    "IngestFunctionLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/iam-fn",
    "UploadApiFunctionLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/x",
}


def template_policies(role: str) -> list[dict[str, Any]]:
    """The inline policies of one of the template's roles, resolved for this test's names."""
    document = cfn.load()
    resolver = cfn.Resolver(document, NAMES, lambda logical_id, _: ARNS[logical_id])
    policies: list[dict[str, Any]] = resolver.resolve(
        document["Resources"][role]["Properties"]["Policies"]
    )
    return policies


class Emulator:
    """moto's app behind the IAM middleware, served on a free port of this process."""

    def __init__(self, work_dir: Path) -> None:
        self.principals = work_dir / PRINCIPALS_FILE
        # composed as the emulator composes it: presigned-request check, IAM check, moto
        app = application(
            DomainDispatcherApplication(create_backend_app),
            EmulatorSettings(principals=str(self.principals)),
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.target = Target(region=REGION, endpoint_url=self.url)
        self.sessions = RoleSessions(self.target, self.principals)

    def __enter__(self) -> Emulator:
        import threading

        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10)  # backends are process-wide
        self._server.shutdown()

    def role(self, name: str, policies: list[dict[str, Any]]) -> str:
        iam = self.target.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        for policy in policies:
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        return str(arn["Role"]["Arn"])

    def session(self, role_name: str, policies: list[dict[str, Any]]) -> boto3.Session:
        """A boto3 session with the credentials a worker of this role gets."""
        env = self.sessions.credentials(self.role(role_name, policies), role_name)
        return boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )

    def client(self, service: str, session: boto3.Session | None = None) -> Any:
        # SigV4, as S3 requires of buckets made since June 2020 (boto3 would presign with
        # SigV2 in us-east-1)
        session = session or boto3.Session(region_name=REGION)
        return session.client(service, endpoint_url=self.url, config=SIGV4)


def create_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "s3_key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def emulator(aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    with Emulator(tmp_path) as running:
        s3, ddb = running.client("s3"), running.client("dynamodb")
        for bucket in (BUCKET, FOREIGN):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"a,b\n")
        for table in (LEDGER, PARTNERS):
            create_table(ddb, table)
        yield running


def error(call: Any, **arguments: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(**arguments)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_the_ingestion_role_reads_its_bucket_and_writes_its_ledger_and_nothing_else(
    emulator: Emulator,
) -> None:
    role = emulator.session("ingest", template_policies("IngestFunctionRole"))
    s3, ddb = emulator.client("s3", role), emulator.client("dynamodb", role)

    assert s3.head_object(Bucket=BUCKET, Key="in/a.csv")["ContentLength"] == 4
    ddb.update_item(
        TableName=LEDGER,
        Key={"s3_key": {"S": "in/a.csv"}},
        UpdateExpression="SET processing_status = :s",
        ExpressionAttributeValues={":s": {"S": "RECEIVED"}},
    )

    assert error(s3.head_object, Bucket=FOREIGN, Key="in/a.csv") == (403, "403")
    assert error(s3.get_object, Bucket=FOREIGN, Key="in/a.csv") == (403, "AccessDenied")
    assert error(s3.put_object, Bucket=BUCKET, Key="in/b.csv", Body=b"x") == (403, "AccessDenied")
    assert error(ddb.put_item, TableName=PARTNERS, Item={"s3_key": {"S": "p"}}) == (
        400,
        "AccessDeniedException",
    )
    # what was refused did not happen; what was allowed did
    admin = emulator.client("dynamodb")
    assert "Item" not in admin.get_item(TableName=PARTNERS, Key={"s3_key": {"S": "p"}})
    item = admin.get_item(TableName=LEDGER, Key={"s3_key": {"S": "in/a.csv"}})["Item"]
    assert item["processing_status"] == {"S": "RECEIVED"}


def test_a_denial_names_the_principal_the_action_and_the_resource(emulator: Emulator) -> None:
    role = emulator.session("ingest", template_policies("IngestFunctionRole"))

    with pytest.raises(ClientError) as raised:
        emulator.client("s3", role).get_object(Bucket=FOREIGN, Key="in/a.csv")

    message = raised.value.response["Error"]["Message"]
    assert "assumed-role/ingest/ingest is not authorized to perform: s3:GetObject" in message
    assert f'"arn:aws:s3:::{FOREIGN}/in/a.csv"' in message


def test_the_upload_api_role_presigns_puts_that_work_and_may_not_read_objects(
    emulator: Emulator,
) -> None:
    role = emulator.session("upload-api", template_policies("UploadApiFunctionRole"))
    s3 = emulator.client("s3", role)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": "in/partner.csv"}, ExpiresIn=60
    )
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "in/a.csv"}, ExpiresIn=60
    )

    assert requests.put(put_url, data=b"p,q\n", timeout=10).status_code == 200
    refused = requests.get(get_url, timeout=10)
    assert refused.status_code == 403
    assert b"<Code>AccessDenied</Code>" in refused.content
    assert error(s3.get_object, Bucket=BUCKET, Key="in/a.csv") == (403, "AccessDenied")
    partners = emulator.client("dynamodb", role)
    assert "Item" not in partners.get_item(TableName=PARTNERS, Key={"s3_key": {"S": "x"}})
    admin = emulator.client("s3")
    assert admin.get_object(Bucket=BUCKET, Key="in/partner.csv")["Body"].read() == b"p,q\n"


def test_a_request_is_authenticated_before_it_is_authorised(emulator: Emulator) -> None:
    # The ingestion role may not PutObject: its genuine URL is AccessDenied, but a tampered one
    # is SignatureDoesNotMatch, as S3 answers (it authenticates first).
    role = emulator.session("ingest-put", template_policies("IngestFunctionRole"))
    url = emulator.client("s3", role).generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": "in/x.csv"}, ExpiresIn=60
    )
    tampered = url.replace("in/x.csv", "in/y.csv")

    genuine = requests.put(url, data=b"x", timeout=10)
    forged = requests.put(tampered, data=b"x", timeout=10)

    assert (genuine.status_code, forged.status_code) == (403, 403)
    assert b"<Code>AccessDenied</Code>" in genuine.content
    assert b"<Code>SignatureDoesNotMatch</Code>" in forged.content


@pytest.mark.parametrize(("list_bucket", "status"), [(False, 403), (True, 404)])
def test_a_missing_object_is_403_without_list_bucket_and_404_with_it(
    emulator: Emulator, list_bucket: bool, status: int
) -> None:
    statements = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    ]
    if list_bucket:
        statements.append(
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}
        )
    policy = {
        "PolicyName": "p",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }
    s3 = emulator.client("s3", emulator.session(f"reader-{list_bucket}", [policy]))

    assert s3.head_object(Bucket=BUCKET, Key="in/a.csv")["ContentLength"] == 4
    assert error(s3.head_object, Bucket=BUCKET, Key="in/missing.csv")[0] == status
    assert error(s3.get_object, Bucket=BUCKET, Key="in/missing.csv")[0] == status


def test_any_other_credentials_are_not_checked(emulator: Emulator) -> None:
    emulator.session("ingest", template_policies("IngestFunctionRole"))  # sessions exist
    s3, ddb = emulator.client("s3"), emulator.client("dynamodb")  # "testing" credentials

    assert s3.get_object(Bucket=FOREIGN, Key="in/a.csv")["Body"].read() == b"a,b\n"
    ddb.put_item(TableName=PARTNERS, Item={"s3_key": {"S": "p"}})
    s3.put_object(Bucket=BUCKET, Key="in/c.csv", Body=b"c")
    assert error(s3.head_object, Bucket=BUCKET, Key="in/missing.csv") == (404, "404")


def test_an_explicit_deny_wins_and_wildcards_match_as_iam_matches_them() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
            {"Effect": "Allow", "Action": "dynamodb:?etItem", "Resource": "arn:aws:dynamodb:*"},
            {
                "Effect": "Allow",
                "Action": "sqs:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            },
        ]
    }
    evaluator = PolicyEvaluator([json.dumps(policy)])

    assert evaluator.allowed("s3:GetObject", "arn:aws:s3:::b/in/a.csv") is None
    assert evaluator.allowed("S3:getobject", "arn:aws:s3:::b/in/a.csv") is None  # actions: any case
    assert evaluator.allowed("s3:GetObject", "arn:aws:s3:::b/secret/a") == "explicit"
    assert evaluator.allowed("s3:GetObject", "arn:aws:s3:::B/in/a.csv") == "implicit"
    assert evaluator.allowed("dynamodb:GetItem", "arn:aws:dynamodb:r:1:table/t") is None
    assert evaluator.allowed("dynamodb:UpdateItem", "arn:aws:dynamodb:r:1:table/t") == "implicit"
    # a condition is not evaluated: an Allow that carries one never applies
    assert evaluator.allowed("sqs:SendMessage", "arn:aws:sqs:r:1:q") == "implicit"


def test_the_dynamodb_process_checks_the_same_sessions(emulator: Emulator, tmp_path: Path) -> None:
    role = emulator.session("ingest", template_policies("IngestFunctionRole"))
    port = free_port()
    log_path = tmp_path / "dynamodb.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "filegate.local.emulator",
                "--port",
                str(port),
                "--dynamodb-only",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, ENV_PRINCIPALS: str(emulator.principals)},
        )
    try:
        wait_listening(port, process, log_path)
        url = f"http://127.0.0.1:{port}"
        create_table(boto3.client("dynamodb", endpoint_url=url), LEDGER)
        create_table(boto3.client("dynamodb", endpoint_url=url), PARTNERS)
        ddb = role.client("dynamodb", endpoint_url=url)

        ddb.put_item(TableName=LEDGER, Item={"s3_key": {"S": "k"}})
        assert error(ddb.put_item, TableName=PARTNERS, Item={"s3_key": {"S": "k"}}) == (
            400,
            "AccessDeniedException",
        )
    finally:
        terminate(process)


def test_lambda_refuses_a_mapping_whose_role_may_not_consume_the_queue(
    emulator: Emulator,
) -> None:
    queue_arn = ARNS["IngestQueue"]
    granted = emulator.role("ingest", template_policies("IngestFunctionRole"))
    without = [
        {
            **policy,
            "PolicyDocument": {
                **policy["PolicyDocument"],
                "Statement": [
                    s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] != "ConsumeQueue"
                ],
            },
        }
        for policy in template_policies("IngestFunctionRole")
    ]
    refused = emulator.role("ingest-no-queue", without)

    assert emulator.sessions.mapping_refusal(granted, queue_arn) is None
    refusal = emulator.sessions.mapping_refusal(refused, queue_arn)
    assert refusal is not None
    assert "does not have permissions to call ReceiveMessage on SQS" in refusal
