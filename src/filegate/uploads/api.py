"""The upload API Lambda entry point (Function URL, payload format 2.0): HTTP in, JSON out.

Routes map onto ``UploadService``; every known failure is a ``RequestError`` and becomes
``{"error": {"code", "message", "field"?}}`` with its status. Anything unexpected is logged and
answered with a generic 500: bad input never reaches that handler. The collaborators are
built once per container, on the first request, so importing this module stays cheap.
``GET /`` serves the browser upload page (``page.html``, read once per container, with the
vendored scripts it names inlined), with a Content-Security-Policy that admits only its own
inline scripts and style, by hash, and the compiling of WebAssembly (hash-wasm's SHA-256).
``GET /uploads/{id}/receipt`` signs an ACCEPTED upload's receipt with the stack's KMS key
(``RECEIPT_KEY_ID``); ``GET /receipts/public-key`` hands partners the key's public half.
Never logged: the event (it carries the x-api-key header), API keys, presigned URLs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from filegate.errors import QuotaBusyError, QuotaExceededError, RequestError
from filegate.ledger import Ledger
from filegate.settings import UploadApiSettings
from filegate.signing import ReceiptKey
from filegate.storage import SIGNING_CONFIG, UploadSigner, credentials_expiry
from filegate.uploads.partners import Partner, PartnerRegistry
from filegate.uploads.service import RawBody, UploadPolicy, UploadService

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

API_KEY_HEADER = "x-api-key"
PAGE = "page.html"
# A line `<!-- inline: vendor/NAME -->` in the page: served as a <script> element holding that
# file (hash-wasm's SHA-256: vendor/hash-wasm.json says where it comes from), so the page stays
# one response with nothing loaded from elsewhere.
_INLINE = re.compile(r"<!-- inline: (vendor/[\w.-]+\.js) -->")
# The page talks to this API ('self') and PUTs to S3 over presigned https URLs; the local
# stack's S3 is plain http on loopback.
_PAGE_CONNECT_SRC = "'self' https: http://127.0.0.1:* http://localhost:*"

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"filegate"})
app = LambdaFunctionUrlResolver()


@functools.cache
def build_service() -> UploadService:
    """The collaborators, once per container (clear the cache to rebuild them)."""
    import boto3  # deferred: importing boto3 is most of a cold start

    settings = UploadApiSettings.from_env()
    policy = UploadPolicy(
        settings.bucket, settings.multipart_threshold, settings.presign_expiry_seconds
    )
    s3 = boto3.client("s3", config=SIGNING_CONFIG)
    # The default session boto3.client just used: its credentials are the ones that sign.
    credentials = boto3.DEFAULT_SESSION.get_credentials() if boto3.DEFAULT_SESSION else None
    signer = UploadSigner(
        s3, settings.presign_expiry_seconds, functools.partial(credentials_expiry, credentials)
    )
    receipt_key = (
        ReceiptKey(boto3.client("kms"), settings.receipt_key_id)
        if settings.receipt_key_id
        else None
    )
    return UploadService(
        PartnerRegistry(settings.partners_table, boto3.client("dynamodb")),
        Ledger(
            settings.table_name, boto3.client("dynamodb"), partners_table=settings.partners_table
        ),
        signer,
        policy,
        receipt_key=receipt_key,
    )


@functools.cache
def upload_page() -> tuple[str, dict[str, str]]:
    """The upload page and its response headers, once per container."""
    html = _INLINE.sub(lambda found: f"<script>{_read(found[1])}</script>", _read(PAGE))
    policy = "; ".join(
        (
            "default-src 'none'",
            # 'wasm-unsafe-eval' lets the page compile hash-wasm's WebAssembly and nothing
            # more: unlike 'unsafe-eval' it admits no eval() or new Function() of JavaScript
            # (CSP Level 3, https://www.w3.org/TR/CSP3/#can-compile-wasm-bytes; MDN,
            # https://developer.mozilla.org/en-US/docs/WebAssembly/JavaScript_interface/compile_static).
            f"script-src {_inline_hashes(html, 'script')} 'wasm-unsafe-eval'",
            f"style-src {_inline_hashes(html, 'style')}",
            f"connect-src {_PAGE_CONNECT_SRC}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return html, headers


def _read(name: str) -> str:
    return resources.files("filegate.uploads").joinpath(name).read_text(encoding="utf-8")


def _inline_hashes(html: str, tag: str) -> str:
    """The CSP sources for each of the page's inline <script> or <style> elements."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(content.encode('utf-8')).digest()).decode()}'"
        for content in re.findall(f"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    )


@app.get("/")
def get_page() -> Response[str]:
    html, headers = upload_page()
    return Response(
        status_code=HTTPStatus.OK,
        content_type="text/html; charset=utf-8",
        body=html,
        headers=headers,
    )


@app.post("/uploads")
def create_upload() -> Response[Any]:
    service, partner = _caller()
    plan = service.create(partner, _body())
    return _json(HTTPStatus.CREATED, plan, {"Location": f"/uploads/{plan['upload_id']}"})


@app.get("/uploads/<upload_id>")
def get_upload(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.status(partner, upload_id))


@app.post("/uploads/<upload_id>/complete")
def complete_upload(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.complete(partner, upload_id, _body()))


@app.post("/uploads/<upload_id>/parts")
def sign_parts(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.sign_parts(partner, upload_id, _body()))


@app.get("/uploads/<upload_id>/parts")
def list_parts(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.stored_parts(partner, upload_id))


@app.post("/uploads/<upload_id>/abort")
def abort_upload(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.abort(partner, upload_id, _body()))


@app.get("/uploads/<upload_id>/receipt")
def get_receipt(upload_id: str) -> Response[Any]:
    service, partner = _caller()
    return _json(HTTPStatus.OK, service.receipt(partner, upload_id))


@app.get("/receipts/public-key")
def get_receipt_public_key() -> Response[Any]:
    service, _ = _caller()
    return _json(HTTPStatus.OK, service.receipt_public_key())


def _request_error(exc: RequestError) -> Response[Any]:
    logger.info("request refused", extra={"status": exc.status, "code": exc.code})
    return _error(exc.status, exc.code, exc.message, exc.field)


def _quota_error(exc: QuotaExceededError) -> Response[Any]:
    """429 with Retry-After (seconds until the quota's window resets) and the quota's use."""
    logger.info("quota reached", extra={"quota": exc.quota, "limit": exc.limit, "used": exc.used})
    error = {"code": exc.code, "message": exc.message, "quota": exc.quota, "limit": exc.limit}
    error |= {"used": exc.used, "retry_after_seconds": exc.retry_after}
    return _json(exc.status, {"error": error}, {"Retry-After": str(exc.retry_after)})


def _busy_error(exc: QuotaBusyError) -> Response[Any]:
    logger.info("quota counters busy", extra={"status": exc.status})
    body = {"error": {"code": exc.code, "message": exc.message}}
    return _json(exc.status, body, {"Retry-After": str(exc.retry_after)})


@app.not_found
def _no_route(_: NotFoundError) -> Response[Any]:
    event = app.current_event
    message = f"no route {event.http_method} {event.path}: see docs/openapi.yaml"
    return _error(HTTPStatus.NOT_FOUND, "not_found", message)


def _unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    message = "the upload API failed; try again later or report the request id"
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", message)


# Registered by call: Powertools' exception_handler decorator is untyped.
app.exception_handler(QuotaExceededError)(_quota_error)
app.exception_handler(QuotaBusyError)(_busy_error)
app.exception_handler(RequestError)(_request_error)
app.exception_handler(Exception)(_unexpected)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response


def _caller() -> tuple[UploadService, Partner]:
    service = build_service()
    partner = service.authenticate(app.current_event.headers.get(API_KEY_HEADER))
    logger.append_keys(partner_id=partner.partner_id)
    return service, partner


def _body() -> RawBody:
    event = app.current_event
    return event.body, bool(event.is_base64_encoded)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def _error(status: int, code: str, message: str, field: str | None = None) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return _json(status, {"error": error})
