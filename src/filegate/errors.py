"""The filegate exception family: one root, one subclass per concern.

Each message says what failed, on which resource, and what to do about it. AWS errors are
translated into these where the AWS call is made (``raise ... from exc``); ``error_code`` and
``is_error`` are the one reading of a botocore error's code those translations share.
"""

from __future__ import annotations


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``"Unknown"`` when it names none); of
    any other exception (a ``BotoCoreError``: no answer from AWS), its class name."""
    # Imported here: the upload client imports this module and does not use botocore.
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def is_error(exc: BaseException, *codes: str) -> bool:
    """Whether ``exc`` is a ``ClientError`` whose AWS error code is one of ``codes``."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and error_code(exc) in codes


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


class QueueError(FilegateError):
    """An SQS call failed, or a message asked for is not in the queue."""


class IntakeError(FilegateError):
    """The bucket's notifications are not in a state the pause/resume asked for allows."""


class PackageError(FilegateError):
    """The Lambda deployment package cannot be built."""


class StackError(FilegateError):
    """A CloudFormation stack operation failed or the stack is not as expected."""


class DeployError(StackError):
    """A deploy cannot start, or the stack update it ran failed (the reasons are named)."""


class ReleaseError(StackError):
    """A Lambda version or the ``live`` alias is missing, or a rollback has nowhere to go."""


class LocalStackError(FilegateError):
    """The local stack cannot start, is not running, or is not healthy."""


class PortInUseError(LocalStackError):
    """The port the local emulator should listen on is taken."""


class PartnerError(FilegateError):
    """A partner registry read or write failed, or names no partner."""


class PartnerNotFoundError(PartnerError):
    """No partner has the given id."""


class RequestError(FilegateError):
    """An upload API request that cannot be served as sent.

    Carries what the API answers: the HTTP ``status``, a stable ``code`` and, when one field
    of the request is at fault, its name in ``field``.
    """

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRequestError(RequestError):
    """The request body or a field of it is malformed (400)."""


class AuthenticationError(RequestError):
    """The API key is missing, malformed, unknown or no longer valid (401)."""

    status = 401
    code = "unauthorized"


class PartnerDisabledError(RequestError):
    """The API key is right but its partner is disabled (403)."""

    status = 403
    code = "partner_disabled"


class UploadNotFoundError(RequestError):
    """No upload with that id belongs to the calling partner (404)."""

    status = 404
    code = "not_found"


class UploadConflictError(RequestError):
    """The upload is not in a state that allows the operation (409)."""

    status = 409
    code = "conflict"


class ReceiptError(FilegateError):
    """A receipt could not be signed, read or checked: KMS refused, or the file is not one."""


class ReceiptsUnavailableError(RequestError):
    """The upload API has no receipt key (a stack deployed from an older template) (503)."""

    status = 503
    code = "receipts_unavailable"


class UploadTooLargeError(RequestError):
    """The declared size is above what the partner (or S3) allows (413)."""

    status = 413
    code = "too_large"


class UnsupportedTypeError(RequestError):
    """The partner may not send this content type (415)."""

    status = 415
    code = "unsupported_type"


class QuotaExceededError(RequestError):
    """The partner is at one of its quotas (429): ``quota`` names it (``filegate.quotas``),
    with its ``limit``, the ``used`` amount, and ``retry_after`` seconds until it resets."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, quota: str, limit: int, used: int, retry_after: int) -> None:
        super().__init__(
            f"partner quota {quota} reached: {used} of {limit} used; retry after"
            f" {retry_after} s, or ask the operator to raise it (filegate partner update)"
        )
        self.quota = quota
        self.limit = limit
        self.used = used
        self.retry_after = retry_after


class QuotaBusyError(RequestError):
    """The partner's counters stayed contended by its own concurrent requests (429)."""

    status = 429
    code = "busy"
    retry_after = 1


class PartsRejectedError(StorageError):
    """S3 refused to complete a multipart upload; ``s3_code`` says why (InvalidPart...)."""

    def __init__(self, message: str, s3_code: str) -> None:
        super().__init__(message)
        self.s3_code = s3_code


class UploadClientError(FilegateError):
    """The upload client could not finish an upload; ``status`` is the HTTP status, if any,
    ``field`` the request field the API named, ``unreachable`` True when the last attempt got
    no answer at all (connection refused or reset, a timeout): the network, not the request."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        field: str | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.unreachable = unreachable


class BytesRefusedError(UploadClientError):
    """S3 refused the bytes of a PUT (``part_number`` None) or of a part on every attempt:
    ``BadDigest``, they do not match the SHA-256 their URL binds."""

    def __init__(self, message: str, part_number: int | None = None) -> None:
        super().__init__(message, status=400)
        self.part_number = part_number


class UploadBusyError(UploadClientError):
    """Another run holds the resume state of this file (same file, API and partner)."""
