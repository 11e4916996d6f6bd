"""The emulator's SQS patch (receive, delete, change visibility) gives moto's answers.

The same scenario (sqs_patch_scenario.py: sends to standard, delayed and FIFO queues, batches,
errors, an S3 notification, then everything received and the queue counts) runs once in a
child process on moto's own code and once here with the patch applied (in-process moto);
every answer must be equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqs_patch_scenario
import unpatched

from filegate.local import patches

SCENARIO = Path(sqs_patch_scenario.__file__)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    """The scenario's answers on moto's own code, from a process where nothing is patched."""
    return unpatched.answers(SCENARIO)


@pytest.fixture
def patched() -> Iterator[None]:
    with patches.applied():
        assert not sqs_patch_scenario.unpatched()
        yield
    assert sqs_patch_scenario.unpatched()  # moto as it was for the next test


def test_patched_sqs_answers_equal_moto_answers(baseline: dict[str, Any], patched: None) -> None:
    answers = sqs_patch_scenario.run()

    assert answers.keys() == baseline.keys()
    for part, expected in baseline.items():
        assert answers[part] == expected, part
    # the scenario covers what it claims: errors, delays, deduplication, the S3 event
    standard = baseline["standard/sends"]
    assert {"InvalidParameterValue"} == {a.get("error") for a in standard if "error" in a}
    assert baseline["standard/received"]["attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"
    assert len(baseline["slow/received"]["messages"]) == 1  # only the DelaySeconds=0 send
    assert len(baseline["fifo-True/received"]["messages"]) == 2  # "same" twice is one message
    assert "MissingParameter" in {a.get("error") for a in baseline["fifo-False/sends"]}
    assert len(baseline["s3/received"]["messages"]) == 2  # the test event and the put
