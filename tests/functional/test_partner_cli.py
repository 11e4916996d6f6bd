"""`filegate partner ...` against a stack in a moto server: add, list, disable, rotate-key,
and the quotas: add/update's limits, their validation, usage."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import REGION
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner
from upload_builders import create_upload_ledger

from filegate.cli import app, main
from filegate.ledger import Declaration, Ledger
from filegate.quotas import Quotas
from filegate.uploads.partners import PartnerRegistry

STACK = "filegate-partner-cli-test"
TEMPLATE = {
    "Resources": {
        "Partners": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "partner_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "partner_id", "AttributeType": "S"}],
            },
        }
    },
    "Outputs": {
        "PartnersTableName": {"Value": {"Ref": "Partners"}},
        "UploadApiUrl": {"Value": "https://example.lambda-url.eu-central-1.on.aws/"},
    },
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    cloudformation = boto3.client(
        "cloudformation",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(TEMPLATE))
    yield url
    # The server keeps its state in this process's moto backends: leave them empty.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    server.stop()


def partner_cli(endpoint: str, *args: str) -> Any:
    where = ["--endpoint-url", endpoint, "--stack", STACK, "--region", REGION]
    result = CliRunner().invoke(app, ["partner", *args, *where])
    assert result.exit_code == 0, result.output
    return result


def registry(endpoint: str) -> PartnerRegistry:
    ref = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint).describe_stacks(
        StackName=STACK
    )["Stacks"][0]
    table = {o["OutputKey"]: o["OutputValue"] for o in ref["Outputs"]}["PartnersTableName"]
    return PartnerRegistry(
        table, boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    )


def test_add_prints_the_key_once_as_json_and_it_authenticates(endpoint: str) -> None:
    result = partner_cli(
        endpoint,
        "add",
        "Acme Corp",
        "--max-size",
        "1000",
        "--allow-type",
        "text/*",
        "--allow-type",
        "application/json",
        "--output",
        "json",
    )

    document = json.loads(result.stdout)
    assert document["prefix"] == f"{document['partner_id']}/"
    assert document["api_key"].startswith(f"fg_{document['partner_id']}_")
    assert (document["max_size"], document["allowed_types"]) == (
        1000,
        ["text/*", "application/json"],
    )
    assert document["api_url"].startswith("https://")
    assert "shown once" in result.stderr
    assert registry(endpoint).authenticate(document["api_key"]).name == "Acme Corp"


def test_list_disable_and_rotate(endpoint: str) -> None:
    added = json.loads(partner_cli(endpoint, "add", "Globex", "--output", "json").stdout)
    partner_id = added["partner_id"]

    listed = json.loads(partner_cli(endpoint, "list", "--output", "json").stdout)
    rotated = json.loads(partner_cli(endpoint, "rotate-key", partner_id, "--output", "json").stdout)
    disabled = json.loads(partner_cli(endpoint, "disable", partner_id, "--output", "json").stdout)

    assert partner_id in [p["partner_id"] for p in listed]
    assert all("api_key" not in p and "key_hash" not in p for p in listed)
    assert rotated["api_key"] != added["api_key"]
    assert disabled["status"] == "DISABLED"


def test_an_unknown_partner_is_a_clean_error(endpoint: str) -> None:
    result = CliRunner().invoke(
        app, ["partner", "disable", "ghost-000000", "--endpoint-url", endpoint, "--stack", STACK]
    )

    assert result.exit_code != 0
    assert "no partner 'ghost-000000'" in repr(result.exception) + result.output


def test_the_table_view_shows_the_key(endpoint: str) -> None:
    result = partner_cli(endpoint, "add", "Initech")

    assert "fg_initech-" in result.stdout
    assert "api_key" in result.stdout


# --- quotas (issue 12, item 4; docs/quotas.md) ---


def filegate_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run ``filegate ...`` through its real entry point (which turns a FilegateError into
    one line and exit code 2); the exit code and everything it printed."""
    monkeypatch.setattr(sys, "argv", ["filegate", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def test_add_and_update_set_the_quotas_given_and_keep_the_others(endpoint: str) -> None:
    added = json.loads(
        partner_cli(
            endpoint, "add", "Quota Co", "--daily-uploads", "5", "--rate", "2", "--output", "json"
        ).stdout
    )
    defaults = Quotas().as_dict()
    assert added["quotas"] == defaults | {"daily_uploads": 5, "rate": 2}
    updated = json.loads(
        partner_cli(
            endpoint,
            "update",
            added["partner_id"],
            "--daily-bytes",
            "1000",
            "--max-pending",
            "3",
            "--output",
            "json",
        ).stdout
    )
    assert updated["quotas"] == defaults | {
        "daily_uploads": 5,
        "rate": 2,
        "daily_bytes": 1000,
        "max_pending": 3,
    }
    assert registry(endpoint).get(added["partner_id"]).quotas == Quotas(5, 1000, 3, 2)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("add", "Bad Co", "--daily-uploads", "0"), "--daily-uploads"),
        (("add", "Bad Co", "--daily-bytes", "-5"), "--daily-bytes"),
        (("add", "Bad Co", "--rate", "fast"), "--rate"),
        (("add", "Bad Co", "--max-pending", "1.5"), "--max-pending"),
        (("update", "ghost-000000", "--rate", "0"), "--rate"),
        (("update", "ghost-000000"), "nothing to update"),
        (("update", "ghost-000000", "--rate", "3"), "no partner 'ghost-000000'"),
        (("usage", "ghost-000000"), "no partner 'ghost-000000'"),
    ],
)
def test_a_bad_quota_or_partner_exits_2_naming_it(
    endpoint: str,
    args: tuple[str, ...],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = ("--endpoint-url", endpoint, "--stack", STACK, "--region", REGION)
    code, output = filegate_exit(monkeypatch, capsys, "partner", *args, *where)
    assert code == 2, output
    assert named in output
    assert "Traceback" not in output
    listed = json.loads(partner_cli(endpoint, "list", "--output", "json").stdout)
    assert "Bad Co" not in [p["name"] for p in listed]


def test_usage_shows_todays_declarations_and_pending_against_the_limits(endpoint: str) -> None:
    # GIVEN a partner with two uploads declared today (the ledger's declaration transaction)
    partner_id = json.loads(
        partner_cli(endpoint, "add", "Usage Co", "--daily-uploads", "10", "--output", "json").stdout
    )["partner_id"]
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    ledger_table = create_upload_ledger(dynamodb, f"usage-ledger-{partner_id}")
    partners_table = registry(endpoint).table_name
    ledger = Ledger(ledger_table, dynamodb, partners_table=partners_table)
    for number, size in enumerate((100, 250)):
        upload_id = f"up-{'a' * 25}{'ab'[number]}"
        ledger.declare(
            Declaration(
                key=f"{partner_id}/{upload_id}/f.csv",
                bucket="b",
                upload_id=upload_id,
                partner_id=partner_id,
                size=size,
                sha256="0" * 64,
                content_type="text/csv",
                method="PUT",
                expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ),
            registry(endpoint).get(partner_id).quotas,
        )
    # WHEN its usage is asked for
    document = json.loads(partner_cli(endpoint, "usage", partner_id, "--output", "json").stdout)
    table = partner_cli(endpoint, "usage", partner_id).stdout
    # THEN each quota shows its limit and use
    uses = {use["quota"]: use for use in document["quotas"]}
    assert document["partner_id"] == partner_id
    assert (uses["daily_uploads"]["limit"], uses["daily_uploads"]["used"]) == (10, 2)
    assert uses["daily_uploads"]["left"] == 8
    assert (uses["daily_bytes"]["used"], uses["max_pending"]["used"]) == (350, 2)
    assert uses["max_pending"]["resets_in_seconds"] is None
    assert 0 < uses["daily_uploads"]["resets_in_seconds"] <= 86_400
    assert uses["rate"]["limit"] == Quotas().rate
    for quota in ("daily_uploads", "daily_bytes", "max_pending", "rate"):
        assert quota in table
