"""The stack's outputs, by name: the one module that spells them.

The template's ``Outputs`` are how every command finds the stack's resources (the bucket, the
table, the queues, the functions, the alerts topic). Each command reaches an output through
these constants (``ref.output(BUCKET_NAME)``), never through its literal name, so a rename in
the template is one change here; ``tests/unit/test_stack_outputs.py`` checks that the template
declares exactly these and that no other module spells one.
"""

from __future__ import annotations

from typing import Final

BUCKET_NAME: Final = "BucketName"
TABLE_NAME: Final = "TableName"
QUEUE_URL: Final = "QueueUrl"
QUEUE_ARN: Final = "QueueArn"
DLQ_URL: Final = "DeadLetterQueueUrl"
DLQ_ARN: Final = "DeadLetterQueueArn"
FUNCTION_NAME: Final = "FunctionName"
FUNCTION_ARN: Final = "FunctionArn"
ALERTS_TOPIC_ARN: Final = "AlertsTopicArn"
UPLOAD_API_URL: Final = "UploadApiUrl"
PARTNERS_TABLE_NAME: Final = "PartnersTableName"
UPLOAD_API_FUNCTION_NAME: Final = "UploadApiFunctionName"
DASHBOARD_NAME: Final = "DashboardName"
RECEIPT_KEY_ARN: Final = "ReceiptKeyArn"
EVENT_BUS_NAME: Final = "EventBusName"
EVENTS_FUNCTION_NAME: Final = "EventsFunctionName"
EVENTS_DLQ_URL: Final = "EventsDeadLetterQueueUrl"
WEBHOOK_SECRET_PREFIX: Final = "WebhookSecretPrefix"  # noqa: S105 (an output name)
WEBHOOK_ROLE_ARN: Final = "WebhookRoleArn"
WEBHOOK_DLQ_URL: Final = "WebhookDeadLetterQueueUrl"

ALL: Final = frozenset(
    {
        BUCKET_NAME,
        TABLE_NAME,
        QUEUE_URL,
        QUEUE_ARN,
        DLQ_URL,
        DLQ_ARN,
        FUNCTION_NAME,
        FUNCTION_ARN,
        ALERTS_TOPIC_ARN,
        UPLOAD_API_URL,
        PARTNERS_TABLE_NAME,
        UPLOAD_API_FUNCTION_NAME,
        DASHBOARD_NAME,
        RECEIPT_KEY_ARN,
        EVENT_BUS_NAME,
        EVENTS_FUNCTION_NAME,
        EVENTS_DLQ_URL,
        WEBHOOK_SECRET_PREFIX,
        WEBHOOK_ROLE_ARN,
        WEBHOOK_DLQ_URL,
    }
)
