"""Event builders for the functional tests: fixtures from tests/events, varied per test.

Real S3 events carry sequencers and moto's do not, so tests build events with explicit ones.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).parent.parent / "events"
REGION = "eu-central-1"
BUCKET = "filegate-uploads-test"  # the bucket named in tests/events/*.json


def load_event(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return document


def s3_record(
    key: str,
    *,
    sequencer: str | None,
    event_name: str = "ObjectCreated:Put",
    event_time: str = "2025-09-28T20:37:00.123Z",
    version_id: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """An S3 notification record built from the direct-put fixture (key given decoded)."""
    record: dict[str, Any] = copy.deepcopy(load_event("s3_put_direct.json")["Records"][0])
    obj: dict[str, Any] = {"key": quote_plus(key)}
    for name, value in (("size", size), ("versionId", version_id), ("sequencer", sequencer)):
        if value is not None:
            obj[name] = value
    record.update(eventName=event_name, eventTime=event_time)
    record["s3"]["object"] = obj
    return record


def sqs_batch(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """An SQS batch whose messages carry the given notification documents (or raw bodies)."""
    template = load_event("sqs_batch_put.json")["Records"][0]
    records = []
    for number, body in enumerate(bodies, start=1):
        message = copy.deepcopy(template)
        message["messageId"] = f"00000000-0000-4000-8000-{number:012d}"
        message["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(message)
    return {"Records": records}


def notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
