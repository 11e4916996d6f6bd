"""`filegate uploads expire` on a stack: the sweep of ``filegate.uploads.expiry`` over the
stack's bucket (BucketName output) and ledger (TableName output); each upload it expires
gives its partner's pending count back in the partners table (PartnersTableName output)."""

from __future__ import annotations

from datetime import timedelta

from filegate.ledger import Ledger
from filegate.outputs import BUCKET_NAME, PARTNERS_TABLE_NAME, TABLE_NAME
from filegate.progress import NO_PROGRESS, Progress
from filegate.stackref import StackRef
from filegate.storage import BucketOps
from filegate.uploads.expiry import DEFAULT_OLDER_THAN, Sweeper, SweepReport


def expire(
    ref: StackRef,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    dry_run: bool = False,
    progress: Progress = NO_PROGRESS,
) -> SweepReport:
    """Expire the stack's overdue declarations and abort its orphaned multipart uploads."""
    partners = ref.outputs.get(PARTNERS_TABLE_NAME)
    ledger = Ledger(ref.output(TABLE_NAME), ref.client("dynamodb"), partners_table=partners)
    s3 = BucketOps(ref.client("s3"))
    return Sweeper(s3, ledger, ref.output(BUCKET_NAME), progress=progress).sweep(
        older_than, dry_run
    )
