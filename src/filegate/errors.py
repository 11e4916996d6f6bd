"""The filegate exception family: one root, one subclass per concern.

Each message says what failed, on which resource, and what to do about it. AWS errors are
translated into these where the AWS call is made (``raise ... from exc``).
"""

from __future__ import annotations


class FilegateError(Exception):
    """Root of every error filegate raises on purpose."""


class ConfigError(FilegateError):
    """A setting (argument or environment variable) is missing or malformed."""


class EventError(FilegateError):
    """An S3 or SQS event cannot be parsed; the message names the field."""


class LedgerError(FilegateError):
    """A DynamoDB ledger read or write failed."""


class StorageError(FilegateError):
    """An S3 call failed."""


class PackageError(FilegateError):
    """The Lambda deployment package cannot be built."""


class StackError(FilegateError):
    """A CloudFormation stack operation failed or the stack is not as expected."""


class LocalStackError(FilegateError):
    """The local stack cannot start, is not running, or is not healthy."""


class PortInUseError(LocalStackError):
    """The port the local emulator should listen on is taken."""
