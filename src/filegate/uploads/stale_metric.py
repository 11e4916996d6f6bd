"""The stale-uploads metric Lambda entry point: run on a schedule (EventBridge), it counts the
multipart uploads open in the upload bucket for longer than ``STALE_UPLOAD_SECONDS``
(``uploads.expiry.stale_count``) and reports the count as the CloudWatch metric
``filegate/StaleMultipartUploads`` (dimension ``Bucket``), which the template's alarm watches.

The metric goes out in CloudWatch's embedded metric format (EMF): one JSON line on stdout,
which Lambda writes to the function's log group and CloudWatch turns into the metric
(CloudWatch User Guide, "Specification: Embedded metric format"), so the function needs no
cloudwatch:PutMetricData, only s3:ListBucketMultipartUploads on the bucket. The count is
reported every run, 0 included, so the alarm sees data while all is well.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from filegate.settings import StaleUploadsSettings
from filegate.storage import BucketOps
from filegate.uploads.expiry import stale_count

NAMESPACE = "filegate"
STALE_METRIC = "StaleMultipartUploads"
OPEN_METRIC = "OpenMultipartUploads"
DIMENSION = "Bucket"


@functools.cache
def build() -> tuple[StaleUploadsSettings, BucketOps]:
    """The settings and the S3 calls, once per container (clear the cache to rebuild them)."""
    import boto3  # deferred: importing boto3 is most of a cold start

    return StaleUploadsSettings.from_env(), BucketOps(boto3.client("s3"))


def measure(s3: BucketOps, settings: StaleUploadsSettings, now: datetime) -> dict[str, Any]:
    """The counts and their EMF document for ``now``."""
    uploads = list(s3.open_multipart_uploads(settings.bucket))
    older_than = timedelta(seconds=settings.stale_after_seconds)
    stale = stale_count(uploads, now, older_than)
    return emf_document(settings.bucket, stale, len(uploads), now)


def emf_document(bucket: str, stale: int, open_count: int, now: datetime) -> dict[str, Any]:
    """One EMF log line carrying both counts, by bucket."""
    metrics = [{"Name": name, "Unit": "Count"} for name in (STALE_METRIC, OPEN_METRIC)]
    directive = {"Namespace": NAMESPACE, "Dimensions": [[DIMENSION]], "Metrics": metrics}
    return {
        "_aws": {"Timestamp": int(now.timestamp() * 1000), "CloudWatchMetrics": [directive]},
        DIMENSION: bucket,
        STALE_METRIC: stale,
        OPEN_METRIC: open_count,
    }


def lambda_handler(
    event: Any, context: Any, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> dict[str, Any]:
    """Count, print the EMF line, and return the counts (for `aws lambda invoke`)."""
    settings, s3 = build()
    document = measure(s3, settings, clock())
    print(json.dumps(document), flush=True)  # stdout: the log group, where EMF is read
    return {
        "bucket": settings.bucket,
        STALE_METRIC: document[STALE_METRIC],
        OPEN_METRIC: document[OPEN_METRIC],
    }
