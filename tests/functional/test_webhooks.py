"""Partner webhooks (issue 12, item 2; docs/webhooks.md) against moto: the signature and its
verification, the publisher's signed copy for a partner with a secret, and `filegate partner
webhook set|show|remove` leaving exactly the EventBridge and Secrets Manager resources the
design names, with clean errors for bad input."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from builders import REGION
from moto import mock_aws
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from filegate.cli import app, main
from filegate.publish import handler
from filegate.publish.bus import webhook_name
from filegate.publish.exceptions import SignatureError
from filegate.publish.mapping import UPLOAD_ACCEPTED, VerdictEvent
from filegate.publish.secrets import WebhookSecrets
from filegate.publish.webhook import (
    WEBHOOK_DETAIL_TYPE,
    WEBHOOK_SOURCE,
    sign,
    verify,
    webhook_event,
)

STACK = "filegate-webhook-cli-test"
BUS = "wh-test-events"
PREFIX = "wh-test/webhooks/"
ROLE = "arn:aws:iam::123456789012:role/wh-test-webhooks"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TEMPLATE = {
    "Resources": {
        "Partners": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "partner_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "partner_id", "AttributeType": "S"}],
            },
        },
        "WebhookDeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": "wh-test-webhooks-dlq"},
        },
    },
    "Outputs": {
        "PartnersTableName": {"Value": {"Ref": "Partners"}},
        "UploadApiUrl": {"Value": "https://example.lambda-url.eu-central-1.on.aws/"},
        "EventBusName": {"Value": BUS},
        "FunctionName": {"Value": "wh-test"},
        "WebhookSecretPrefix": {"Value": PREFIX},
        "WebhookRoleArn": {"Value": ROLE},
        "WebhookDeadLetterQueueUrl": {"Value": {"Ref": "WebhookDeadLetterQueue"}},
    },
}


def detail(partner_id: str = "acme") -> dict[str, Any]:
    return {"event_id": "e-1", "key": f"{partner_id}/up-x/a.csv", "partner_id": partner_id}


# --- the copies' own source ---


def test_a_rule_on_source_filegate_gets_each_verdict_once_not_the_webhook_copy() -> None:
    """A consumer that matches on ``source: filegate`` alone (as docs/events.md allows) must
    see each ledger change once: the webhook's signed copy goes out under its own source."""
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name="bus")
        queue_url = sqs.create_queue(QueueName="consumer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="consumer", EventBusName="bus", EventPattern=json.dumps({"source": ["filegate"]})
        )
        events.put_targets(
            Rule="consumer",
            EventBusName="bus",
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        # GIVEN a verdict and the signed copy the publisher puts for a partner with a webhook
        verdict = VerdictEvent(UPLOAD_ACCEPTED, NOW, detail())
        copy = webhook_event(verdict, "s3cret", NOW)
        # WHEN both are put on the bus, as the publisher puts them
        answer = events.put_events(Entries=[verdict.entry("bus"), copy.entry("bus")])
        assert answer["FailedEntryCount"] == 0
        # THEN the consumer's queue holds the verdict only
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        bodies = [json.loads(m["Body"]) for m in received.get("Messages", [])]
        assert [(b["source"], b["detail-type"]) for b in bodies] == [("filegate", UPLOAD_ACCEPTED)]
        assert copy.entry("bus")["Source"] == WEBHOOK_SOURCE


# --- the signature (pure) ---


def test_a_signed_webhook_verifies_and_any_change_does_not() -> None:
    event = VerdictEvent(UPLOAD_ACCEPTED, NOW, detail())
    signed = webhook_event(event, "s3cret", NOW)
    body = json.loads(json.dumps(signed.detail))  # as the partner receives it

    assert signed.detail_type == WEBHOOK_DETAIL_TYPE
    assert sorted(body) == ["partner_id", "payload", "signature", "timestamp"]
    assert body["signature"] == sign("s3cret", int(NOW.timestamp()), body["payload"])
    assert body["signature"].startswith("v1=")
    assert len(body["signature"]) == 3 + 64
    assert verify("s3cret", body, NOW) == event.detail
    tampered = {**body, "payload": body["payload"].replace("a.csv", "b.csv")}
    for wrong, secret, now in (
        (tampered, "s3cret", NOW),
        (body, "other", NOW),
        ({**body, "timestamp": body["timestamp"] + 1}, "s3cret", NOW),
        (body, "s3cret", NOW + timedelta(days=2)),
        ({"payload": body["payload"]}, "s3cret", NOW),
    ):
        with pytest.raises(SignatureError):
            verify(secret, wrong, now)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_payload() -> None:
    # A fixed vector partners can check their own code against (docs/webhooks.md).
    assert sign("key", 1765022400, '{"a":1}') == (
        "v1=ebe7ceeab1c6cca703730bcf06e14432891fa8fc28341746aac30f7d46ba4d97"
    )


def test_the_partners_snippet_in_the_docs_verifies_a_webhook_and_refuses_a_tampered_one() -> None:
    text = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    snippet = text.split("## Verifying a webhook", 1)[1].split("```python", 1)[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # the documentation's own code, run as a partner would
    now = datetime.now(UTC)
    signed = webhook_event(VerdictEvent(UPLOAD_ACCEPTED, now, detail()), "s3cret", now).detail
    body = json.dumps(signed).encode()

    assert namespace["verify"]("s3cret", body) == detail()
    tampered = json.dumps({**signed, "payload": signed["payload"].replace("acme", "acmf")})
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verify"]("s3cret", tampered.encode())


def test_webhook_names_stay_within_eventbridges_64_characters_under_the_roles_prefix() -> None:
    short = webhook_name("filegate-ingest", "acme-x1y2z3")
    stack = "s" * 53  # LambdaName's longest
    long_one, other = webhook_name(stack, "acme-x1y2z3"), webhook_name(stack, "acme-x1y2z4")

    assert short == "filegate-ingest-wh-acme-x1y2z3"
    assert len(long_one) <= 64
    assert long_one.startswith(f"{stack}-wh-")
    assert long_one != other


# --- the publisher's secrets: existence means a webhook, kept a minute ---


@pytest.fixture
def secrets_client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def test_a_partner_without_a_secret_has_no_webhook_until_the_cache_expires(
    secrets_client: Any,
) -> None:
    now = [0.0]
    secrets = WebhookSecrets(PREFIX, secrets_client, ttl_seconds=60, clock=lambda: now[0])
    assert secrets.get("acme") is None
    WebhookSecrets(PREFIX, secrets_client).put("acme", "value-1")

    now[0] = 59.0
    cached = secrets.get("acme")
    now[0] = 61.0
    fresh = secrets.get("acme")

    assert (cached, fresh) == (None, "value-1")
    assert secrets_client.get_secret_value(SecretId=f"{PREFIX}acme")["SecretString"] == "value-1"


def test_the_publisher_signs_a_copy_for_each_event_of_a_partner_with_a_secret_only(
    secrets_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET_PREFIX", PREFIX)
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    handler.build_secrets.cache_clear()  # its client must be made inside moto
    WebhookSecrets(PREFIX, secrets_client).put("acme", "acme-secret")
    events = [
        VerdictEvent(UPLOAD_ACCEPTED, NOW, detail("acme")),
        VerdictEvent(UPLOAD_ACCEPTED, NOW, detail("globex")),
        VerdictEvent(UPLOAD_ACCEPTED, NOW, {**detail(), "partner_id": None}),
    ]

    signed = handler.webhooks(events, NOW)
    handler.build_secrets.cache_clear()

    (webhook,) = signed
    assert webhook.detail["partner_id"] == "acme"
    assert verify("acme-secret", webhook.detail, NOW) == detail("acme")


# --- `filegate partner webhook set|show|remove` ---


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    served("cloudformation", url).create_stack(StackName=STACK, TemplateBody=json.dumps(TEMPLATE))
    served("events", url).create_event_bus(Name=BUS)
    yield url
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    server.stop()


def served(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def where(endpoint: str) -> list[str]:
    return ["--endpoint-url", endpoint, "--stack", STACK, "--region", REGION]


def partner_cli(endpoint: str, *args: str) -> Any:
    result = CliRunner().invoke(app, ["partner", *args, *where(endpoint)])
    assert result.exit_code == 0, result.output
    return result


def filegate_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["filegate", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


@pytest.fixture(scope="module")
def partner_id(endpoint: str) -> str:
    added = json.loads(partner_cli(endpoint, "add", "Hooked", "--output", "json").stdout)
    return str(added["partner_id"])


def test_set_creates_the_route_and_the_secret_it_prints_once(
    endpoint: str, partner_id: str
) -> None:
    events = served("events", endpoint)
    secrets = served("secretsmanager", endpoint)
    url = "https://hooks.example.com/filegate"

    result = partner_cli(
        endpoint, "webhook", "set", partner_id, url, "--retries", "3", "--output", "json"
    )
    shown = json.loads(result.stdout)
    name = f"wh-test-wh-{partner_id}"

    # THEN the secret printed is the one stored under the stack's prefix, and said once
    assert len(shown["secret"]) == 64
    stored = secrets.get_secret_value(SecretId=f"{PREFIX}{partner_id}")["SecretString"]
    assert stored == shown["secret"]
    assert "shown once" in result.stderr
    # AND the rule routes this partner's "Partner Webhook" events, and only those
    rule = events.describe_rule(Name=name, EventBusName=BUS)
    assert json.loads(rule["EventPattern"]) == {
        "source": [WEBHOOK_SOURCE],
        "detail-type": [WEBHOOK_DETAIL_TYPE],
        "detail": {"partner_id": [partner_id]},
    }
    (target,) = events.list_targets_by_rule(Rule=name, EventBusName=BUS)["Targets"]
    destination = events.describe_api_destination(Name=name)
    assert target["Arn"] == destination["ApiDestinationArn"]
    assert (target["InputPath"], target["RoleArn"]) == ("$.detail", ROLE)
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 86400}
    assert target["DeadLetterConfig"]["Arn"].endswith(":wh-test-webhooks-dlq")
    assert (destination["InvocationEndpoint"], destination["HttpMethod"]) == (url, "POST")
    connection = events.describe_connection(Name=name)
    assert connection["AuthorizationType"] == "API_KEY"
    assert connection["ConnectionArn"] == destination["ConnectionArn"]

    # AND show tells all of it but the secret
    again = partner_cli(endpoint, "webhook", "show", partner_id, "--output", "json")
    described = json.loads(again.stdout)
    assert (described["url"], described["rule_state"], described["secret_exists"]) == (
        url,
        "ENABLED",
        True,
    )
    assert shown["secret"] not in again.stdout

    # AND a second set replaces the URL and the secret, still one rule and one target
    other = "https://hooks.example.com/v2"
    second = json.loads(
        partner_cli(endpoint, "webhook", "set", partner_id, other, "--output", "json").stdout
    )
    assert second["secret"] != shown["secret"]
    assert events.describe_api_destination(Name=name)["InvocationEndpoint"] == other
    assert len(events.list_targets_by_rule(Rule=name, EventBusName=BUS)["Targets"]) == 1


def test_remove_deletes_the_route_and_the_secret(endpoint: str) -> None:
    added = json.loads(partner_cli(endpoint, "add", "Leaving", "--output", "json").stdout)
    pid = added["partner_id"]
    partner_cli(endpoint, "webhook", "set", pid, "https://hooks.example.com/x")
    events = served("events", endpoint)
    secrets = served("secretsmanager", endpoint)

    removed = json.loads(partner_cli(endpoint, "webhook", "remove", pid, "--output", "json").stdout)
    again = json.loads(partner_cli(endpoint, "webhook", "remove", pid, "--output", "json").stdout)

    assert (removed["removed"], again["removed"]) == (True, False)
    name = f"wh-test-wh-{pid}"
    rules = events.list_rules(EventBusName=BUS)["Rules"]
    assert name not in [r["Name"] for r in rules]
    assert name not in [d["Name"] for d in events.list_api_destinations()["ApiDestinations"]]
    assert name not in [c["Name"] for c in events.list_connections()["Connections"]]
    assert f"{PREFIX}{pid}" not in [s["Name"] for s in secrets.list_secrets()["SecretList"]]
    shown = json.loads(partner_cli(endpoint, "webhook", "show", pid, "--output", "json").stdout)
    assert (shown["url"], shown["rule_state"], shown["secret_exists"]) == (None, None, False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/x", "https:// endpoints only"),
        ("https://user:pw@hooks.example.com/x", "no user:password@"),
        ("https:///nohost", "needs a host"),
        ("https://hooks.example.com/" + "a" * 2048, "at most 2048 characters"),
        ("https://hooks.example.com/a b", "percent-encoded"),
    ],
    ids=["ftp", "credentials", "no-host", "too-long", "space"],
)
def test_set_refuses_a_url_eventbridge_would_not_call(
    endpoint: str,
    partner_id: str,
    url: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, printed = filegate_exit(
        monkeypatch, capsys, "partner", "webhook", "set", partner_id, url, *where(endpoint)
    )

    assert code == 2
    assert says in printed
    assert "Traceback" not in printed


def test_an_unknown_partner_or_an_out_of_range_retry_count_is_refused(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://hooks.example.com/x"
    unknown = filegate_exit(
        monkeypatch, capsys, "partner", "webhook", "set", "ghost-000000", url, *where(endpoint)
    )
    too_many = filegate_exit(
        monkeypatch,
        capsys,
        *("partner", "webhook", "set", "ghost-000000", url, "--retries", "186"),
        *where(endpoint),
    )

    assert unknown[0] == 2
    assert "partner 'ghost-000000' does not exist" in unknown[1]
    assert too_many[0] == 2
    assert "--retries" in too_many[1]
