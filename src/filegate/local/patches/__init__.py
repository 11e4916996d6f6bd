"""The seams into moto's internals, installed by :func:`apply` (the emulator process) or for a
block by :func:`applied` (in-process tests, which put moto back as it was when they end).

What can be done around moto's WSGI app is middleware in ``local/emulator.py``, not here.
What is left corrects moto where AWS documents another behaviour, or buys measured speed:

- :mod:`.s3`: S3 events shaped like real S3's (``sequencer``, ``versionId``, delete-marker
  events, one event per multipart upload, events numbered in the order S3 applied the writes).
  The ingestion's ordering logic needs them to run locally.
- :mod:`.lambda_reservation`: CloudFormation's create of a function refused when its
  reservation would leave under 100 unreserved executions, as Lambda refuses it; installed with
  the CloudFormation models (``cfn_models.register`` / ``installed``, through ``lambda_account``).
- :mod:`.s3_multipart`: CompleteMultipartUpload joining the parts where they are (moto copies a
  1 GiB object about five times), with moto's ETag, checksums and errors, and NoSuchUpload for
  an upload the bucket does not hold, as S3 answers (moto: a KeyError, 500).
- :mod:`.s3_listing` (memory, measured): ListObjectVersions without moto's copy of every
  object's bytes (twice the bucket's bytes held by each listing).
- :mod:`.s3_checksums`: a PUT whose body does not match its ``x-amz-checksum-*`` is refused,
  as S3 refuses it, and HeadObject returns a composite checksum as ``<base64>-<N>`` with its type
  (the middleware for parts, completion and ListParts is ``local/s3_checksum_check.py``).
- :mod:`.sqs` (speed, measured: docs/benchmarks.md): moto's SQS receive, delete and change
  visibility made cheap; its receive also takes the queue's lock, so two pollers are never
  handed one message, as SQS promises (moto's own receive has no lock).
  ``FILEGATE_EMULATOR_SQS_PATCH=0`` serves without it.
- :mod:`.dynamodb` (speed, measured): moto's UpdateItem (the ledger's one conditional write per
  event) parsed once per expression text and validated in one pass (:mod:`.ddb_values`), with
  the same results as moto's. ``FILEGATE_EMULATOR_DDB_PATCH=0`` serves without it.
- :mod:`.ddb_transactions` (speed, measured: docs/aws-fidelity.md, "Quotas and account
  limits"): TransactWriteItems without moto's copy of every table it names (each declaration
  of a partner upload is one), conditions checked before any write as DynamoDB does; under
  the same switch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from filegate.local.patches import (
    ddb_transactions,
    dynamodb,
    s3,
    s3_checksums,
    s3_listing,
    s3_multipart,
    sqs,
)
from filegate.local.patches.seams import Seams
from filegate.settings import EmulatorSettings

_PROCESS_SEAMS = Seams()


def install(seams: Seams, settings: EmulatorSettings | None = None) -> None:
    """Install every seam ``settings`` asks for, recording each in ``seams``."""
    settings = settings or EmulatorSettings()
    s3.patch(seams)
    s3_multipart.patch(seams)
    s3_checksums.patch(seams)
    s3_listing.patch(seams)
    if settings.sqs_patch:
        sqs.patch_sqs(seams)
    if settings.ddb_patch:
        dynamodb.patch(seams)
        ddb_transactions.patch(seams)


def apply(settings: EmulatorSettings | None = None) -> None:
    """Install the seams for the life of this process (the emulator; idempotent)."""
    if not _PROCESS_SEAMS.active:
        install(_PROCESS_SEAMS, settings or EmulatorSettings.resolve())


def undo() -> None:
    """Undo what :func:`apply` installed (the functional tests' conftest, after each test)."""
    _PROCESS_SEAMS.undo()


@contextlib.contextmanager
def applied(settings: EmulatorSettings | None = None) -> Iterator[None]:
    """The seams for the duration of a block, then moto as it was (in-process tests)."""
    seams = Seams()
    install(seams, settings)
    try:
        yield
    finally:
        seams.undo()
