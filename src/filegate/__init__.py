"""filegate: partner uploads to S3, recorded in a DynamoDB ledger through SQS and Lambda.

The package root stays import-free so the Lambda entry point pays for nothing it does
not use; the public pieces live in their own modules (see docs/architecture.md).
"""

__version__ = "0.1.0"
