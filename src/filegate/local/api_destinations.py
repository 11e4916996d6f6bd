"""EventBridge's API-destination targets on the local twin: after a PutEvents, the matching
rules' API destinations are called as EventBridge calls them.

moto 5.2.5 keeps connections, API destinations and rule targets, but calls an API destination
only when ``MOTO_EVENTS_INVOKE_HTTP`` is set (the local stack never sets it), and then sends no
body, no auth and no retries (``moto/events/models.py``, ``Rule.send_to_targets``).
:class:`ApiDestinationDelivery` is WSGI middleware around moto's app: when moto accepted a
PutEvents, it hands the accepted entries to a thread that does what EventBridge does
(EventBridge User Guide, "API destinations" and "Event retry policy and using dead-letter
queues"), through EventBridge's and SQS's own public APIs on this emulator (it imports nothing
of moto's):

- the bus's enabled rules whose pattern matches the event (ListRules, TestEventPattern: moto
  5.2.5 leaves TestEventPattern unimplemented, an empty answer, so this middleware answers it
  with :func:`matches`) and their API-destination targets (ListTargetsByRule,
  DescribeApiDestination, DescribeConnection);
- the target's input: ``Input``, ``InputPath`` or ``InputTransformer``, else the event;
- a request with the destination's method and URL (``*`` replaced by ``PathParameterValues``),
  the connection's API-key (read from the connection's secret) or basic auth header, the
  target's and the connection's ``HttpParameters`` (the connection's win),
  ``Content-Type: application/json``, a 5 s timeout;
- a timeout, a connection error, 401, 407, 409, 429 or 5xx is retried up to the target's
  ``RetryPolicy`` (185 attempts, a day, by default); any other 4xx is not; an event given up on
  goes to the target's ``DeadLetterConfig`` queue, the event as body, with the
  ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``, ``EXHAUSTED_RETRY_CONDITION``
  and ``RETRY_ATTEMPTS`` attributes.

Locally a retry comes after a short pause (0.1 s doubling to 2 s) rather than EventBridge's
backoff; OAuth connections and ``InvocationRateLimitPerSecond`` are not modelled; the pattern
matcher knows exact values, ``prefix``, ``exists`` and ``anything-but`` (any other filter
never matches: stricter) (docs/aws-fidelity.md, "Events and streams").
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from filegate.aws import Target
from filegate.local.iam import WsgiApp
from filegate.queues import MessageQueue, queue_url

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0  # EventBridge's client execution timeout for an API destination
RETRIED_STATUSES = frozenset({401, 407, 409, 429})
DEFAULT_ATTEMPTS = 185
DEFAULT_MAX_AGE_SECONDS = 86400
FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 2.0
_PUT_EVENTS = "AWSEvents.PutEvents"
_TEST_EVENT_PATTERN = "AWSEvents.TestEventPattern"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiDestinationDelivery:
    """moto's app, and API-destination delivery after each PutEvents it accepted."""

    def __init__(self, app: WsgiApp, start: Callable[[Callable[[], None]], None] | None = None):
        self._app = app
        self._start = start or _thread

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        operation = environ.get("HTTP_X_AMZ_TARGET")
        if operation not in (_PUT_EVENTS, _TEST_EVENT_PATTERN):
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(request)
        if operation == _TEST_EVENT_PATTERN:
            return _test_event_pattern(request, start_response)
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            answer["status"] = status
            return start_response(status, headers, *args)

        body = b"".join(self._app(environ, keep))
        if str(answer.get("status", "")).startswith("200"):
            target = Target(region=_region(environ), endpoint_url=_endpoint(environ))
            accepted = _accepted(request, body)
            if accepted:
                self._start(lambda: Deliveries(target).put_events(accepted))
        return [body]


def _test_event_pattern(request: bytes, start_response: Callable[..., Any]) -> list[bytes]:
    """TestEventPattern, answered as EventBridge does (``{"Result": true|false}``)."""
    body: dict[str, Any]
    try:
        document = json.loads(request or b"{}")
        result = matches(json.loads(document["EventPattern"]), json.loads(document["Event"]))
        status, body = "200 OK", {"Result": result}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        status, body = (
            "400 Bad Request",
            {"__type": "InvalidEventPatternException", "message": str(exc)},
        )
    start_response(status, [("Content-Type", "application/x-amz-json-1.1")])
    return [json.dumps(body).encode()]


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches an EventBridge pattern (EventBridge User Guide, "Event
    patterns"): every field of the pattern must match; a list matches when any of its values
    or filters does."""
    for name, wanted in pattern.items():
        present = name in event
        value = event.get(name)
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not matches(wanted, value):
                return False
        elif not any(_matches_one(f, present, value) for f in wanted):
            return False
    return True


def _matches_one(wanted: Any, present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(wanted, Mapping):
        return present and wanted in values
    if "exists" in wanted:
        return present is bool(wanted["exists"])
    if "prefix" in wanted:
        return any(isinstance(v, str) and v.startswith(wanted["prefix"]) for v in values)
    if "anything-but" in wanted:
        excluded = wanted["anything-but"]
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return present and all(v not in excluded for v in values)
    return False  # numeric, cidr, wildcard...: not modelled, never matches (stricter)


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="api-destinations", daemon=True).start()


def _region(environ: Mapping[str, Any]) -> str:
    """The region of the request's credential scope (``Credential=key/date/region/...``)."""
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    scope = authorization.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    return scope[2] if len(scope) >= 4 else "us-east-1"


def _endpoint(environ: Mapping[str, Any]) -> str:
    return f"http://{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT')}"


def _accepted(request: bytes, response: bytes) -> list[tuple[dict[str, Any], str]]:
    """The request's entries that moto accepted, each with its EventBridge id."""
    try:
        entries = json.loads(request or b"{}").get("Entries", [])
        answers = json.loads(response or b"{}").get("Entries", [])
    except ValueError:
        return []
    return [
        (entry, str(answer["EventId"]))
        for entry, answer in zip(entries, answers, strict=False)
        if isinstance(answer, dict) and answer.get("EventId")
    ]


class Deliveries:
    """The API-destination deliveries of accepted events, through this emulator's own APIs."""

    def __init__(
        self,
        target: Target,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._target = target
        self._events = target.client("events")
        self._sleep = sleep
        self._clock = clock

    def put_events(self, accepted: Iterable[tuple[dict[str, Any], str]]) -> None:
        rules: dict[str, list[dict[str, Any]]] = {}  # each bus's rules, listed once a request
        for entry, event_id in accepted:
            try:
                bus = str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
                if bus not in rules:
                    rules[bus] = self._rules(bus)
                self._route(bus, rules[bus], entry, event_id)
            except Exception:  # a background thread: log, never die silently
                logger.exception("API-destination delivery of event %s failed", event_id)

    def _route(
        self, bus: str, rules: list[dict[str, Any]], entry: Mapping[str, Any], event_id: str
    ) -> None:
        for rule in rules:
            event = _event(entry, event_id, self._target.region, rule["Arn"].split(":")[4])
            if not matches(json.loads(rule["EventPattern"]), event):
                continue
            answer = self._events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)
            for target in answer.get("Targets", []):
                if ":api-destination/" in str(target.get("Arn", "")):
                    delivery = _Delivery(self, rule["Arn"], dict(target), event)
                    _thread(delivery.run)

    def _rules(self, bus: str) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        request: dict[str, Any] = {"EventBusName": bus}
        while True:
            answer = self._events.list_rules(**request)
            rules.extend(r for r in answer.get("Rules", []) if r.get("State") == "ENABLED")
            if not answer.get("NextToken"):
                return [r for r in rules if r.get("EventPattern")]
            request["NextToken"] = answer["NextToken"]

    def describe(self, destination_arn: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The API destination of a target ARN, and its connection."""
        name = destination_arn.split(":api-destination/", 1)[1].split("/", 1)[0]
        destination = self._events.describe_api_destination(Name=name)
        connection_name = str(destination["ConnectionArn"]).split(":connection/", 1)[1]
        connection = self._events.describe_connection(Name=connection_name.split("/", 1)[0])
        return destination, self._with_key(connection)

    def _with_key(self, connection: dict[str, Any]) -> dict[str, Any]:
        """DescribeConnection leaves the API key's value out (on AWS as in moto): EventBridge
        keeps it in the connection's secret (``SecretArn``), where this reads it."""
        auth = connection.get("AuthParameters") or {}
        key = auth.get("ApiKeyAuthParameters")
        if connection.get("AuthorizationType") != "API_KEY" or not key or key.get("ApiKeyValue"):
            return connection
        answer = self._target.client("secretsmanager").get_secret_value(
            SecretId=connection["SecretArn"]
        )
        stored = json.loads(answer["SecretString"])
        value = stored.get("ApiKeyValue") or stored.get("api_key_value") or ""
        auth["ApiKeyAuthParameters"] = {**key, "ApiKeyValue": str(value)}
        return {**connection, "AuthParameters": auth}

    def dead_letter(self, queue_arn: str, event: Mapping[str, Any], why: dict[str, str]) -> None:
        sqs = self._target.client("sqs")
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in why.items()}
        MessageQueue(queue_url(sqs, queue_arn), sqs).send(json.dumps(event), attributes)

    def pause(self, attempt: int) -> None:
        self._sleep(min(FIRST_PAUSE_SECONDS * 2**attempt, MAX_PAUSE_SECONDS))

    def now(self) -> float:
        return self._clock()


class _Delivery:
    """One event to one API-destination target: its requests, retries, and dead letter."""

    def __init__(
        self, owner: Deliveries, rule_arn: str, target: dict[str, Any], event: dict[str, Any]
    ) -> None:
        self._owner, self._rule_arn, self._target, self._event = owner, rule_arn, target, event

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            logger.exception("API-destination delivery to %s failed", self._target.get("Arn"))

    def _run(self) -> None:
        destination, connection = self._owner.describe(str(self._target["Arn"]))
        request = _request(destination, connection, self._target, _input(self._target, self._event))
        policy = self._target.get("RetryPolicy") or {}
        attempts = int(policy.get("MaximumRetryAttempts", DEFAULT_ATTEMPTS))
        max_age = float(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_SECONDS))
        started = self._owner.now()
        retries = 0
        while True:
            status, error = _send(request)
            if status is not None and 200 <= status < 300:
                return
            retried = status is None or status in RETRIED_STATUSES or status >= 500
            exhausted = "MaximumRetryAttempts" if retries >= attempts else None
            if self._owner.now() - started >= max_age:
                exhausted = "MaximumEventAgeInSeconds"
            if not retried or exhausted:
                self._give_up(status, error, retries, exhausted)
                return
            self._owner.pause(retries)
            retries += 1

    def _give_up(self, status: int | None, error: str, retries: int, exhausted: str | None) -> None:
        queue = (self._target.get("DeadLetterConfig") or {}).get("Arn")
        logger.warning(
            "API destination %s: giving up after %d retries: %s",
            self._target["Arn"],
            retries,
            error,
        )
        if not queue:
            return  # EventBridge drops it (the EventsDropped metric)
        why = {
            "RULE_ARN": self._rule_arn,
            "TARGET_ARN": str(self._target["Arn"]),
            "ERROR_CODE": "SDK_CLIENT_ERROR" if status is None else f"HTTP_{status}",
            "ERROR_MESSAGE": error[:256],
            "RETRY_ATTEMPTS": str(retries),
        }
        if exhausted:
            why["EXHAUSTED_RETRY_CONDITION"] = exhausted
        self._owner.dead_letter(str(queue), self._event, why)


def _event(entry: Mapping[str, Any], event_id: str, region: str, account: str) -> dict[str, Any]:
    """The event as EventBridge delivers it, from a PutEvents request entry."""
    when = entry.get("Time")
    moment = (
        datetime.fromtimestamp(float(when), UTC)
        if isinstance(when, int | float)
        else datetime.now(UTC)
    )
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry.get("DetailType"),
        "source": entry.get("Source"),
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(entry.get("Resources") or []),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def json_path(document: Any, path: str) -> Any:
    """A value by a simple JSONPath (``$``, ``$.a.b``), or None when it is not there."""
    value = document
    for name in [p for p in path.removeprefix("$").split(".") if p]:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _input(target: Mapping[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends the target (PutTargets: Input, InputPath, InputTransformer)."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        return json.dumps(json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    text = str(transformer.get("InputTemplate", ""))
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        value = json_path(event, str(path))
        text = text.replace(f'"<{name}>"', json.dumps(value))
        text = text.replace(f"<{name}>", value if isinstance(value, str) else json.dumps(value))
    return text


def _request(
    destination: Mapping[str, Any],
    connection: Mapping[str, Any],
    target: Mapping[str, Any],
    body: str,
) -> urllib.request.Request:
    url = str(destination["InvocationEndpoint"])
    target_http = target.get("HttpParameters") or {}
    for value in target_http.get("PathParameterValues") or []:
        url = url.replace("*", str(value), 1)
    auth = connection.get("AuthParameters") or {}
    connection_http = auth.get("InvocationHttpParameters") or {}
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Amazon/EventBridge/ApiDestinations",
        **(target_http.get("HeaderParameters") or {}),
        **{p["Key"]: p["Value"] for p in connection_http.get("HeaderParameters") or []},
        **_auth_header(str(connection.get("AuthorizationType")), auth),
    }
    query = {
        **(target_http.get("QueryStringParameters") or {}),
        **{p["Key"]: p["Value"] for p in connection_http.get("QueryStringParameters") or []},
    }
    if query:
        url += ("&" if "?" in url else "?") + urlencode(query)
    method = str(destination.get("HttpMethod") or "POST")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"API destination endpoint {url!r} is not an http(s) URL")
    # the scheme is checked just above
    return urllib.request.Request(url, data=body.encode(), headers=headers, method=method)  # noqa: S310


def _auth_header(kind: str, auth: Mapping[str, Any]) -> dict[str, str]:
    if kind == "API_KEY":
        key = auth.get("ApiKeyAuthParameters") or {}
        return {str(key.get("ApiKeyName")): str(key.get("ApiKeyValue", ""))}
    if kind == "BASIC":
        basic = auth.get("BasicAuthParameters") or {}
        pair = f"{basic.get('Username', '')}:{basic.get('Password', '')}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    return {}  # OAuth is not modelled


def _send(request: urllib.request.Request) -> tuple[int | None, str]:
    """The endpoint's status (None: no answer) and a description of a failure."""
    try:
        with _NO_PROXY.open(request, timeout=TIMEOUT_SECONDS) as answer:
            return int(answer.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"the endpoint answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"the endpoint could not be reached: {exc}"
