"""`filegate partner ...` against a stack in a moto server: add, list, disable, rotate-key."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from builders import REGION
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from filegate.cli import app
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
