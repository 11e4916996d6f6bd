"""What the upload API does, apart from HTTP: declare, report, complete and abort uploads.

``UploadService`` holds the rules between the partner registry, the ledger and the signer: an
upload is declared in the ledger (PENDING) when it is planned (a PUT's URL signed, or a multipart
upload created with its part size and count); a multipart upload's part URLs are signed on
request, a page at a time, each for the SHA-256 the client computed for that part, and every
request moves the upload's expiry on (a large file over a slow link outlives its first URLs);
a single PUT's whole-file SHA-256 is declared up front (its URL binds it), a multipart upload's
may be declared up front or given at completion (the client then reads the file once, hashing
while it sends: docs/integrity.md); completing records the composite SHA-256 of the listed parts
(and a whole-file SHA-256 given then) in the ledger before S3 is asked to complete (so the
ingestion, which never reads the object, knows what S3 must hold); an upload is given up
(ABORTED), or closed REJECTED when the client reports that S3 refused its bytes; the parts S3
holds can be listed (ListParts) for a client that resumes; a partner sees only its own uploads
(anyone else's is "not found"); a PENDING upload past its expiry is turned EXPIRED when read; an
ACCEPTED upload's receipt is signed by the injected ``ReceiptKey`` (``filegate.receipts``).
Object keys are ``<partner_id>/<upload_id>/<filename>``. The upload-id index is eventually
consistent, so an id it does not know yet is looked up again for a moment before the answer
is "not found". The collaborators (and clock and sleep) are injected; this module makes no AWS
call of its own. Answers are plain JSON-ready dicts.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from filegate.errors import (
    InvalidRequestError,
    PartsRejectedError,
    ReceiptsUnavailableError,
    UploadConflictError,
    UploadNotFoundError,
    UploadTooLargeError,
)
from filegate.events import iso_utc
from filegate.ledger import (
    Declaration,
    Ledger,
    Status,
    UploadRecord,
    UploadStatus,
    holds_object,
)
from filegate.parts import composite_sha256, part_ranges
from filegate.receipts import receipt_payload
from filegate.signing import PublicKey, ReceiptKey
from filegate.storage import PresignedPart, PresignedRequest, StoredPart, UploadSigner
from filegate.uploads.partners import Partner, PartnerRegistry
from filegate.uploads.requests import (
    MAX_SIGN_PARTS,
    Refusal,
    UploadRequest,
    check_limits,
    load_json,
    parse_abort,
    parse_completion,
    parse_parts_to_sign,
    parse_upload_request,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RawBody = tuple[str | bytes | None, bool]  # the request body as sent, and whether base64

PUT = "PUT"
MULTIPART = "MULTIPART"
UPLOAD_ID_PATTERN = re.compile(r"up-[a-z2-7]{26}")
# The upload-id GSI is eventually consistent: a GET right after the POST may not find the
# declaration yet. Look again after these pauses (0.75 s in all; GSI propagation is usually
# well under a second) before answering 404. Only well-formed ids of authenticated partners
# get here, and each extra query is one cheap read.
INDEX_RETRY_DELAYS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)


def new_upload_id() -> str:
    """``up-`` and 26 lowercase base32 characters (130 bits of randomness)."""
    text = base64.b32encode(secrets.token_bytes(17)).decode("ascii").lower()
    return f"up-{text[:26]}"


@dataclass(frozen=True)
class UploadPolicy:
    """Where uploads go and how they are signed (from ``UploadApiSettings``)."""

    bucket: str
    multipart_threshold: int
    expiry_seconds: int


class UploadService:
    """The upload API's rules over injected registry, ledger and signer."""

    def __init__(
        self,
        registry: PartnerRegistry,
        ledger: Ledger,
        signer: UploadSigner,
        policy: UploadPolicy,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        index_retry_delays: Sequence[float] = INDEX_RETRY_DELAYS,
        receipt_key: ReceiptKey | None = None,
    ) -> None:
        self._receipt_key = receipt_key
        self._public_key: PublicKey | None = None
        self._registry = registry
        self._ledger = ledger
        self._signer = signer
        self._policy = policy
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._index_retry_delays = tuple(index_retry_delays)

    def authenticate(self, api_key: str | None) -> Partner:
        """The calling partner (401 / 403 otherwise), its request counted against its rate
        (429 over it)."""
        partner = self._registry.authenticate(api_key)
        self._registry.count_request(partner)
        return partner

    def create(self, partner: Partner, body: RawBody) -> dict[str, Any]:
        """Validate, sign and declare one upload: the 201 body (a PUT or a MULTIPART plan).

        The declaration and the partner's quota counters are one transaction (429 when a
        quota refuses it, and nothing is written)."""
        request = parse_upload_request(load_json(*body))
        check_limits(request, partner.max_size, partner.allowed_types)
        if request.size > partner.quotas.daily_bytes:
            raise UploadTooLargeError(
                f"size {request.size} is above the partner's daily byte quota"
                f" {partner.quotas.daily_bytes}: it can never fit; ask the operator to raise"
                " it (filegate partner update --daily-bytes)",
                "size",
            )
        upload_id = new_upload_id()
        key = f"{partner.prefix}{upload_id}/{request.filename}"
        expires_at = self._clock() + timedelta(seconds=self._lifetime())
        if request.size > self._policy.multipart_threshold:
            plan = self._multipart(partner, request, upload_id, key, expires_at)
        else:
            plan = self._single_put(partner, request, upload_id, key, expires_at)
        logger.info(
            "upload declared",
            extra={"upload_id": upload_id, "partner_id": partner.partner_id, "size": request.size},
        )
        return plan

    def status(self, partner: Partner, upload_id: str) -> dict[str, Any]:
        """The upload's ledger status (EXPIRED once a PENDING upload is past its expiry)."""
        return upload_view(self._current(partner, upload_id))

    def complete(self, partner: Partner, upload_id: str, body: RawBody) -> dict[str, Any]:
        """CompleteMultipartUpload for a pending multipart upload; its status afterwards.

        The composite SHA-256 of the listed parts goes to the ledger first, with the whole
        file's SHA-256 when the declaration left it for now (or, when it gave one, the one
        given now as ``sent_sha256``: a different one makes the verdict REJECTED): the
        object's event may be judged before this call returns, and S3 refuses a list whose
        checksums are not the stored parts' (a retried completion records its own list again).
        """
        record = self._current(partner, upload_id)
        if record.method == MULTIPART and holds_object(record.status, record.event_time):
            # A completion sent again after the first one finished (S3 may take minutes for a
            # large object, longer than this function's timeout): the object is there, judged.
            return upload_view(record)
        multipart_id = _open_multipart(record)
        earlier = record.expected_checksum_sha256  # an earlier completion's parts, if any
        completion = parse_completion(load_json(*body))
        parts = completion.parts
        sha256, sent = _whole_file_sha256(record, completion.sha256)
        expected = composite_sha256(p.checksum_sha256 for p in parts)
        now = self._clock()
        expecting = self._ledger.expect_checksum(record.key, expected, now, sha256, sent)
        if expecting is None:
            raise UploadConflictError(f"upload {upload_id} is no longer pending")
        listed = [(p.part_number, p.etag, p.checksum_sha256) for p in parts]
        try:
            self._signer.complete_multipart(record.bucket, record.key, multipart_id, listed)
        except PartsRejectedError as exc:
            if exc.s3_code != "NoSuchUpload":
                raise InvalidRequestError(str(exc), "parts") from exc
            if earlier != expected:
                raise UploadConflictError(f"upload {upload_id} is no longer open in S3") from exc
            # S3's NoSuchUpload means "aborted or completed". These very parts were sent for
            # completion before and the ledger is still PENDING: S3 finished that completion (it
            # "could take several minutes", longer than this function's timeout) and the
            # object's event brings the verdict. Were it an abort instead (a partner's abort
            # between its S3 call and its ledger write, the 7-day lifecycle rule), the status
            # the client polls turns ABORTED or EXPIRED (docs/aws-fidelity.md, "Retries and
            # timing").
            logger.info("multipart upload completed before", extra={"upload_id": upload_id})
            return upload_view(expecting)
        logger.info("multipart upload completed", extra={"upload_id": upload_id})
        return upload_view(expecting)

    def sign_parts(self, partner: Partner, upload_id: str, body: RawBody) -> dict[str, Any]:
        """URLs for parts of a pending multipart upload, each bound to the SHA-256 the client
        gave for it (at most ``MAX_SIGN_PARTS`` a request), and its expiry moved on.

        The ledger's conditional write decides: a concurrent expiry, abort or arrival wins (409).
        """
        record = self._current(partner, upload_id)
        multipart_id = _open_multipart(record)
        wanted = parse_parts_to_sign(load_json(*body), len(part_ranges(record.declared_size)))
        now = self._clock()
        expires_at = now + timedelta(seconds=self._lifetime())
        if self._ledger.extend(record.key, expires_at, now) is None:
            raise UploadConflictError(f"upload {upload_id} is no longer pending")
        checksums = {part.part_number: part.checksum_sha256 for part in wanted}
        parts = self._signer.presign_parts(
            record.bucket, record.key, multipart_id, record.declared_size, checksums
        )
        logger.info("part urls signed again", extra={"upload_id": upload_id, "parts": len(parts)})
        return {
            "upload_id": upload_id,
            "status": UploadStatus.PENDING.value,
            "expires_at": iso_utc(expires_at),
            "parts": [_part_view(part) for part in parts],
        }

    def stored_parts(self, partner: Partner, upload_id: str) -> dict[str, Any]:
        """The parts S3 holds for a pending multipart upload (ListParts), with the SHA-256 S3
        verified for each: what a client that resumes need not send again."""
        record = self._current(partner, upload_id)
        multipart_id = _open_multipart(record)
        parts = self._signer.list_parts(record.bucket, record.key, multipart_id)
        return {
            "upload_id": upload_id,
            "status": record.status,
            "part_size": record.declared_part_size,
            "part_count": record.declared_part_count,
            "parts": [_stored_view(part) for part in parts],
        }

    def abort(
        self, partner: Partner, upload_id: str, body: RawBody = (None, False)
    ) -> dict[str, Any]:
        """Give a pending upload up: AbortMultipartUpload for a multipart upload, then ABORTED
        in the ledger; or REJECTED with the reason when the client says S3 refused its bytes
        (BadDigest: they are not the ones whose SHA-256 was declared, so nothing arrived).

        A single PUT has nothing to abort in S3, and its URL cannot be revoked: an object sent
        to it later is still judged on arrival (it can only be the declared bytes)."""
        record = self._current(partner, upload_id)
        if record.status != UploadStatus.PENDING:
            raise UploadConflictError(f"upload {upload_id} is {record.status}, not PENDING")
        multipart = record.method == MULTIPART
        refusal = parse_abort(*body, (record.declared_part_count or 0) if multipart else 0)
        if multipart:
            self._signer.abort_multipart(record.bucket, record.key, _open_multipart(record))
        now = self._clock()
        if refusal is None:
            closed = self._ledger.abort(record.key, now)
        else:
            closed = self._ledger.reject(record.key, _refusal_reason(record, refusal), now)
        if closed is None:
            raise UploadConflictError(f"upload {upload_id} is no longer pending")
        logger.info("upload given up", extra={"upload_id": upload_id, "status": closed.status})
        return upload_view(closed)

    def receipt(self, partner: Partner, upload_id: str) -> dict[str, Any]:
        """The signed receipt of an ACCEPTED upload (409 naming the status otherwise).

        The payload is built from a consistent read of the ledger item, and is the same bytes
        on every request (docs/receipts.md); KMS signs it afresh each time (ECDSA signatures
        differ, each valid).
        """
        record = self._current(partner, upload_id)
        if record.status != Status.ACCEPTED:
            raise UploadConflictError(
                f"upload {upload_id} is {record.status}: only an ACCEPTED upload has a receipt"
            )
        receipt = self._receipts().sign(receipt_payload(record))
        logger.info("receipt signed", extra={"upload_id": upload_id})
        return receipt.as_dict()

    def receipt_public_key(self) -> dict[str, str]:
        """The receipt key's public key (PEM) and ARN, read from KMS once per container."""
        if self._public_key is None:
            self._public_key = self._receipts().public_key()
        return self._public_key.as_dict()

    def _receipts(self) -> ReceiptKey:
        if self._receipt_key is None:
            raise ReceiptsUnavailableError(
                "this stack signs no receipts: its upload API has no RECEIPT_KEY_ID;"
                " deploy the current template (`filegate deploy`)"
            )
        return self._receipt_key

    def _single_put(
        self,
        partner: Partner,
        request: UploadRequest,
        upload_id: str,
        key: str,
        expires_at: datetime,
    ) -> dict[str, Any]:
        bucket = self._policy.bucket
        if request.sha256_base64 is None:
            raise InvalidRequestError(
                f"sha256 is required for an upload of {request.size} bytes: at or below"
                f" {self._policy.multipart_threshold} bytes it is one PUT, whose URL binds the"
                " file's SHA-256 (only a multipart upload may give it at completion)",
                "sha256",
            )
        put = self._signer.presign_put(
            bucket, key, request.size, request.sha256_base64, request.content_type
        )
        declaration = _declaration(partner, request, upload_id, key, bucket, expires_at)
        self._ledger.declare(
            replace(declaration, expected_checksum_sha256=request.sha256_base64), partner.quotas
        )
        return {**_plan_head(upload_id, key, expires_at, PUT), **_request_view(put)}

    def _multipart(
        self,
        partner: Partner,
        request: UploadRequest,
        upload_id: str,
        key: str,
        expires_at: datetime,
    ) -> dict[str, Any]:
        bucket = self._policy.bucket
        ranges = part_ranges(request.size)
        multipart_id = self._signer.start_multipart(bucket, key, request.content_type)
        declaration = replace(
            _declaration(partner, request, upload_id, key, bucket, expires_at),
            method=MULTIPART,
            multipart_upload_id=multipart_id,
            part_size=ranges[0][2],
            part_count=len(ranges),
        )
        try:
            self._ledger.declare(declaration, partner.quotas)
        except Exception:
            # Cleanup as soon as the resource exists: no orphaned multipart upload.
            self._signer.abort_multipart(bucket, key, multipart_id)
            raise
        return {
            **_plan_head(upload_id, key, expires_at, MULTIPART),
            **_parts_view(upload_id, ranges[0][2], len(ranges)),
        }

    def _lifetime(self) -> int:
        """Seconds the URLs signed now stay good (less than the policy's when the signing
        credentials expire sooner): the declaration's expiry says the same."""
        return min(self._policy.expiry_seconds, self._signer.lifetime())

    def _current(self, partner: Partner, upload_id: str) -> UploadRecord:
        record = self._own(partner, upload_id)
        now = self._clock()
        if record.overdue(now):
            expired = self._ledger.expire(record.key, now)
            # None: the item moved on (arrived, aborted) since it was read; read it again.
            record = expired or self._own(partner, upload_id)
        return record

    def _own(self, partner: Partner, upload_id: str) -> UploadRecord:
        record = self._find(upload_id) if UPLOAD_ID_PATTERN.fullmatch(upload_id) else None
        if record is None or record.partner_id != partner.partner_id:
            raise UploadNotFoundError(f"no upload {upload_id} for partner {partner.partner_id}")
        return record

    def _find(self, upload_id: str) -> UploadRecord | None:
        """The declaration, looked up again while the eventually consistent index lags."""
        record = self._ledger.get_upload(upload_id)
        for delay in self._index_retry_delays:
            if record is not None:
                break
            self._sleep(delay)
            record = self._ledger.get_upload(upload_id)
        return record


def upload_view(record: UploadRecord) -> dict[str, Any]:
    """``GET /uploads/{upload_id}``'s body."""
    view: dict[str, Any] = {
        "upload_id": record.upload_id,
        "key": record.key,
        "status": record.status,
        "declared": {
            "size": record.declared_size,
            # None until completion for a multipart upload declared without it.
            "sha256": record.declared_sha256 or None,
            "content_type": record.declared_content_type,
            "method": record.method,
        },
        "expires_at": record.expires_at,
        "updated_at": record.updated_at,
    }
    if record.declared_part_count:
        view["declared"]["part_size"] = record.declared_part_size
        view["declared"]["part_count"] = record.declared_part_count
    optional = {"reason": record.reason, "size": record.size, "content_type": record.content_type}
    view.update({name: value for name, value in optional.items() if value is not None})
    if record.checksum_sha256:
        # The checksum S3 verified and holds for the object (docs/integrity.md).
        view["checksum"] = {
            "sha256": record.checksum_sha256,
            "type": record.checksum_type,
            "part_count": record.checksum_part_count,
        }
    return view


def _whole_file_sha256(record: UploadRecord, given: str | None) -> tuple[str | None, str | None]:
    """The whole-file SHA-256s to record at completion: (declared, sent). The one given now is
    the declared one if the declaration left it out (then it is required); when the
    declaration has one, the one given is that of the bytes sent, which the verdict compares
    with it (a difference is REJECTED, naming both: the file is not the one declared)."""
    declared = record.declared_sha256 or None
    if declared is None and given is None:
        raise InvalidRequestError(
            f"sha256 is required: upload {record.upload_id} was declared without the file's"
            " SHA-256, so completing it must give it (64 hexadecimal characters)",
            "sha256",
        )
    return (given, None) if declared is None else (None, given)


def _refusal_reason(record: UploadRecord, refusal: Refusal) -> str:
    """The REJECTED reason for bytes S3 refused, as the partner's client reported it."""
    said = f"({refusal.s3_error}, as the partner's client reported it)"
    if refusal.part_number is None:
        return (
            f"S3 refused the bytes sent as not matching the declared sha256"
            f" {record.declared_sha256} {said}: the file is not the one declared, or it changed"
            " or was damaged on the way; nothing was stored"
        )
    return (
        f"S3 refused the bytes sent for part {refusal.part_number} as not matching the SHA-256"
        f" they were hashed to {said}: the file changed while it was sent, or was damaged on"
        " the way; the multipart upload was aborted"
    )


def _open_multipart(record: UploadRecord) -> str:
    if record.method != MULTIPART or not record.multipart_upload_id:
        raise UploadConflictError(f"upload {record.upload_id} is not a multipart upload")
    if record.status != UploadStatus.PENDING:
        raise UploadConflictError(f"upload {record.upload_id} is {record.status}, not PENDING")
    return record.multipart_upload_id


def _declaration(
    partner: Partner,
    request: UploadRequest,
    upload_id: str,
    key: str,
    bucket: str,
    expires_at: datetime,
) -> Declaration:
    return Declaration(
        key=key,
        bucket=bucket,
        upload_id=upload_id,
        partner_id=partner.partner_id,
        size=request.size,
        sha256=request.sha256,
        content_type=request.content_type,
        method=PUT,
        expires_at=expires_at,
    )


def _plan_head(upload_id: str, key: str, expires_at: datetime, method: str) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "key": key,
        "status": UploadStatus.PENDING.value,
        "expires_at": iso_utc(expires_at),
        "method": method,
    }


def _request_view(request: PresignedRequest) -> dict[str, Any]:
    return {"url": request.url, "headers": dict(request.headers)}


def _part_view(part: PresignedPart) -> dict[str, Any]:
    head = {"part_number": part.part_number, "offset": part.offset, "size": part.size}
    return head | _request_view(part.request)


def _stored_view(part: StoredPart) -> dict[str, Any]:
    return {
        "part_number": part.part_number,
        "size": part.size,
        "etag": part.etag,
        "checksum_sha256": part.checksum_sha256,
    }


def _parts_view(upload_id: str, part_size: int, part_count: int) -> dict[str, Any]:
    """A multipart plan: no URLs yet; each is signed for its part's SHA-256, in pages."""
    return {
        "part_size": part_size,
        "part_count": part_count,
        "checksum_algorithm": "SHA256",
        "sign_parts": {
            "method": "POST",
            "path": f"/uploads/{upload_id}/parts",
            "max_parts": MAX_SIGN_PARTS,
        },
        "list_parts": {"method": "GET", "path": f"/uploads/{upload_id}/parts"},
        "complete": {"method": "POST", "path": f"/uploads/{upload_id}/complete"},
        "abort": {"method": "POST", "path": f"/uploads/{upload_id}/abort"},
    }
