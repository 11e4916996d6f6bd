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
    }
)
# The first six are the required names; the ARNs serve the local mode and ops.
REQUIRED_OUTPUTS = (
    "BucketName",
    "TableName",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "FunctionName",
    "AlertsTopicArn",
)
OUTPUTS = frozenset({*REQUIRED_OUTPUTS, "QueueArn", "DeadLetterQueueArn", "FunctionArn"})
