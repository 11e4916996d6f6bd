"""Patches to the moto emulator, applied in the emulator process only by :func:`apply`.

- :mod:`.s3`: S3 events shaped like real S3's (``sequencer``, ``versionId``, delete-marker
  events, one event per multipart upload, events numbered in the order S3 applied the writes).
  Always applied: the ingestion's ordering logic needs them to run locally. Also
  CompleteMultipartUpload joining the parts where they are (moto copies a 1 GiB object about
  five times), with moto's ETag, checksums and errors.
- :mod:`.dynamodb_atomic`: every DynamoDB request under one lock, so a conditional write's
  check and write are atomic, as DynamoDB's are (moto's are not). Always applied.
- :mod:`.sqs`: moto's SQS fast at queue depth (receive, delete, change visibility, counts, and a
  send to a standard queue), and the backend found for each host remembered (moto recomputes
  it, under a global lock, on every request).
  ``FILEGATE_EMULATOR_SQS_PATCH=0`` serves without them (moto's own SQS and routing).
- :mod:`.dynamodb`: moto's UpdateItem (the ledger's one conditional write per event) parsed once
  per expression text, its AST copied structurally, its expression-only checks run once, a
  plain SET / REMOVE update validated in one pass (:mod:`.ddb_values`), its condition parsed
  once per request, with the same results as moto's. ``FILEGATE_EMULATOR_DDB_PATCH=0`` serves
  without them.
- :mod:`.framework`: moto's per-request work for every service made cheaper (the response
  class's method list computed once per class, request ids drawn in one call).
  ``FILEGATE_EMULATOR_FRAMEWORK_PATCH=0`` serves without it.
- :mod:`.dynamodb_process`: in the main emulator, when ``FILEGATE_EMULATOR_DYNAMODB_URL`` names
  the local stack's DynamoDB emulator process, DynamoDB requests are forwarded there and
  CloudFormation's tables created there too.
- :mod:`.lambda_invoke`: Lambda's Invoke runs the deployed code on the local stack's workers,
  when the supervisor passes ``FILEGATE_EMULATOR_INVOKE_URL`` (moto cannot run code).

The three switches exist to measure the difference (benchmarks/e2e_burst.py).
``FILEGATE_EMULATOR_PROFILE=<file>`` profiles every request with cProfile and writes the merged
statistics (``pstats`` format) to that file when the emulator exits. The profiler's clock is the
thread's CPU time: with a dozen request threads taking turns at one GIL, wall time would
charge every function for the time its thread spent waiting for the GIL.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import threading
import time
from typing import Any

from filegate.local.patches import (
    dynamodb,
    dynamodb_atomic,
    dynamodb_process,
    framework,
    lambda_invoke,
    s3,
    sqs,
)

# Read here, not in filegate.settings: only the emulator process reads them.
ENV_SQS_PATCH = "FILEGATE_EMULATOR_SQS_PATCH"
ENV_DDB_PATCH = "FILEGATE_EMULATOR_DDB_PATCH"
ENV_FRAMEWORK_PATCH = "FILEGATE_EMULATOR_FRAMEWORK_PATCH"
ENV_DYNAMODB_URL = "FILEGATE_EMULATOR_DYNAMODB_URL"
ENV_PROFILE = "FILEGATE_EMULATOR_PROFILE"

_applied = False


# --- profiling the emulator (FILEGATE_EMULATOR_PROFILE) ---------------------------------------


def _profile_requests(stats_path: str) -> None:
    """Profile each request in its own cProfile (werkzeug serves each in a new thread)."""
    import pstats

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    idle: list[cProfile.Profile] = []
    every: list[cProfile.Profile] = []
    lock = threading.Lock()
    call = DomainDispatcherApplication.__call__

    def profiled(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            if idle:
                profile = idle.pop()
            else:
                profile = cProfile.Profile(time.thread_time)
                every.append(profile)
        try:
            return profile.runcall(call, self, environ, start_response)
        finally:
            with lock:
                idle.append(profile)

    def dump() -> None:
        with lock:
            if every:
                stats = pstats.Stats(every[0])
                for profile in every[1:]:
                    stats.add(profile)
                stats.dump_stats(stats_path)

    setattr(DomainDispatcherApplication, "__call__", profiled)  # noqa: B010 - see s3.patch
    atexit.register(dump)


def apply() -> None:
    """Install the patches (idempotent). Call before the emulator serves any request."""
    global _applied  # noqa: PLW0603 - patching is process-wide by nature
    if _applied:
        return
    s3.patch()
    dynamodb_atomic.patch()
    if os.environ.get(ENV_SQS_PATCH, "1") != "0":
        sqs.patch_sqs()
        sqs.patch_routing()
    if os.environ.get(ENV_DDB_PATCH, "1") != "0":
        dynamodb.patch()
    if os.environ.get(ENV_FRAMEWORK_PATCH, "1") != "0":
        framework.patch()
    lambda_invoke.patch()
    if os.environ.get(ENV_DYNAMODB_URL):
        dynamodb_process.patch(os.environ[ENV_DYNAMODB_URL])
    if os.environ.get(ENV_PROFILE):
        _profile_requests(os.environ[ENV_PROFILE])
    _applied = True
