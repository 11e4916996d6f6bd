"""Partner uploads: the partner registry, request validation, the upload rules and the API.

``api`` is the Lambda entry point; it imports only this package, settings, errors, events,
ledger, storage, Powertools and (lazily) boto3, as the Lambda package ships nothing else.
"""

from filegate.uploads.partners import Partner, PartnerRegistry
from filegate.uploads.requests import UploadRequest, parse_upload_request
from filegate.uploads.service import UploadPolicy, UploadService, new_upload_id

__all__ = [
    "Partner",
    "PartnerRegistry",
    "UploadPolicy",
    "UploadRequest",
    "UploadService",
    "new_upload_id",
    "parse_upload_request",
]
