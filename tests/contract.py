"""The template's contract that code and users rely on: parameter and output names."""

PARAMETERS = frozenset(
    {
        "BucketName",
        "LambdaName",
        "DynamoTableName",
        "CodeBucket",
        "CodeKey",
        "AlertEmail",
        "LogRetentionInDays",
        "MultipartThresholdBytes",
        "PresignExpirySeconds",
        "UploadPageOrigin",
        # issue 9: a first deploy on a new account, versions that follow the configuration
        "IngestMemorySize",
        "IngestReservedConcurrency",
        "UploadApiReservedConcurrency",
        "NoncurrentVersionExpirationDays",
        "FunctionFingerprint",
        # issue 12: verdict events
        "EventArchiveRetentionDays",
    }
)
# The first six are the required names; the ARNs serve the local mode and ops; the
# upload API's three (UPLOAD_OUTPUTS) serve the partner upload commands and page.
REQUIRED_OUTPUTS = (
    "BucketName",
    "TableName",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "FunctionName",
    "AlertsTopicArn",
)
UPLOAD_OUTPUTS = ("UploadApiUrl", "PartnersTableName", "UploadApiFunctionName")
# DashboardName: the CloudWatch dashboard of the pipeline (docs/alarms.md).
OUTPUTS = frozenset(
    {
        *REQUIRED_OUTPUTS,
        "QueueArn",
        "DeadLetterQueueArn",
        "FunctionArn",
        *UPLOAD_OUTPUTS,
        "DashboardName",
        # issue 12: the key that signs upload receipts (docs/receipts.md)
        "ReceiptKeyArn",
        # issue 12: verdict events (docs/events.md)
        "EventBusName",
        "EventsFunctionName",
        "EventsDeadLetterQueueUrl",
        # issue 12: partner webhooks
        "WebhookSecretPrefix",
        "WebhookRoleArn",
        "WebhookDeadLetterQueueUrl",
    }
)
