"""Makes the emulator check presigned S3 requests as S3 does.

moto serves any presigned URL whatever its signature, expiry or signing version. S3 does not,
and a partner's first upload on AWS would be the first to find out. ``PresignedRequestCheck``
wraps the emulator's WSGI application and answers, before moto sees the request, what S3
answers (S3 API reference, "Authenticating Requests: Using Query Parameters (AWS Signature
Version 4)" and "Signature Calculations for the Authorization Header"; error codes from
"Error responses"), as S3's XML error body:

- SigV2 query authentication (``AWSAccessKeyId`` / ``Signature`` / ``Expires``): 400
  InvalidRequest "... Please use AWS4-HMAC-SHA256." (SigV2 is off for buckets created after
  June 24, 2020, and every local bucket is new; S3 API reference, "AWS Signature Version 2
  turned off (deprecated) for Amazon S3");
- missing or malformed ``X-Amz-*`` parameters, an expiry above 7 days, a credential scope for
  another date, service or region than the bucket's: 400 AuthorizationQueryParametersError;
- past ``X-Amz-Date + X-Amz-Expires``: 403 AccessDenied "Request has expired";
- an ``x-amz-*`` header the URL did not sign, or ``host`` not signed: 403 AccessDenied
  "There were headers present in the request which were not signed";
- a signature that does not match the request (method, path, query, any signed header, such
  as Content-Length, Content-Type, x-amz-checksum-sha256, x-amz-server-side-encryption): 403
  SignatureDoesNotMatch;
- a key the emulator issued but the request does not match: an STS key without its session
  token or an inactive key (403 InvalidAccessKeyId), a wrong token (400 InvalidToken), an STS
  session past its expiration (400 ExpiredToken): a URL signed with temporary credentials
  stops working when they expire, whatever X-Amz-Expires says (S3 user guide, "Sharing
  objects with presigned URLs").

Which secret verifies a signature: the secret of a key the emulator issued (moto's STS
sessions, ASIA..., and IAM users' keys, looked up in moto's backends by ``emulator_state`` as
``moto.iam.access_control`` does), or ``LOCAL_ACCESS_KEY``'s, which is itself. A key the
emulator does not know (any credentials a user's AWS CLI sends) is checked for everything
except its signature: looser than S3, which answers 403 InvalidAccessKeyId
(docs/aws-fidelity.md). CORS preflights (OPTIONS) are not authenticated, as on S3; requests
signed in the Authorization header are moto's (and the IAM check's) business, not this one's.

Composed around the emulator's app in ``emulator._Server``, outside the IAM check (``iam``): S3
authenticates a request before it authorises it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from filegate.local.emulator_state import SigningKey, emulator_bucket_region, emulator_key
from filegate.settings import LOCAL_ACCESS_KEY

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 24 * 3600  # SigV4 presigned URLs: at most one week
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_V4_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# S3 tolerates these x-amz headers unsigned on a presigned request.
_UNSIGNED_OK = frozenset({"x-amz-content-sha256"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
KeyLookup = Callable[[str], SigningKey | None]
RegionLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class Refusal:
    """S3's answer to a request it refuses: status, error code, message and extra elements."""

    status: int
    code: str
    message: str
    details: tuple[tuple[str, str], ...] = ()

    def body(self, request_id: str) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.details)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        ).encode()


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request a presigned URL's signature covers."""

    method: str
    path: str  # decoded, as S3 sees the key
    query: tuple[tuple[str, str], ...]  # decoded, in the order sent
    headers: Mapping[str, str]  # lowercase names

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> Request:
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=path or "/",
            query=tuple(_query_pairs(environ.get("QUERY_STRING", ""))),
            headers=dict(_headers(environ)),
        )

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)


def _query_pairs(query: str) -> Iterator[tuple[str, str]]:
    for pair in query.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            yield unquote(key), unquote(value)


def _headers(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value != "":
            yield key.replace("_", "-").lower(), str(value)


def check(
    request: Request, keys: KeyLookup, regions: RegionLookup, now: datetime
) -> Refusal | None:
    """S3's refusal of this presigned request, or ``None`` when S3 would serve it."""
    if request.method == "OPTIONS" or request.param("Action") is not None:
        return None  # a CORS preflight, or another service's query API
    names = {key for key, _ in request.query}
    if "X-Amz-Algorithm" in names or "X-Amz-Signature" in names or "X-Amz-Credential" in names:
        return _check_v4(request, keys, regions, now)
    if "Signature" in names and "AWSAccessKeyId" in names:
        return Refusal(
            400,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
    return None


def _check_v4(
    request: Request, keys: KeyLookup, regions: RegionLookup, now: datetime
) -> Refusal | None:
    params = {name: request.param(name) for name in _V4_PARAMS}
    scope = (params["X-Amz-Credential"] or "").split("/")
    if len(scope) == 5 and scope[3] != "s3":
        return None  # another service's presigned request (STS, RDS, ...): not S3's rules
    if params["X-Amz-Algorithm"] != ALGORITHM and params["X-Amz-Algorithm"] is not None:
        return _query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    present = {name: value for name, value in params.items() if value is not None}
    if len(present) != len(_V4_PARAMS):
        return _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters."
        )
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        return _query_error(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    return (
        _check_time(present, scope, now)
        or _check_region(request, scope[2], regions)
        or _check_unsigned(request, present["X-Amz-SignedHeaders"])
        or _check_key(request, present, scope, keys(scope[0]), now)
    )


def _query_error(message: str, *details: tuple[str, str]) -> Refusal:
    return Refusal(400, "AuthorizationQueryParametersError", message, details)


def _check_time(params: Mapping[str, str], scope: list[str], now: datetime) -> Refusal | None:
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"], _DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return _query_error(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    expires = params["X-Amz-Expires"]
    if not expires.isdigit():
        return _query_error("X-Amz-Expires should be a number")
    if int(expires) > MAX_EXPIRES:
        return _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is, the given "
            f"X-Amz-Expires must be less than {MAX_EXPIRES} seconds"
        )
    if scope[1] != params["X-Amz-Date"][:8]:
        return _query_error("Invalid credential date. Date is not the same as X-Amz-Date.")
    deadline = signed_at + timedelta(seconds=int(expires))
    if now > deadline:
        return Refusal(
            403,
            "AccessDenied",
            "Request has expired",
            (("X-Amz-Expires", expires), ("Expires", _iso(deadline)), ("ServerTime", _iso(now))),
        )
    return None


def _check_region(request: Request, region: str, regions: RegionLookup) -> Refusal | None:
    bucket = request.path.lstrip("/").split("/", 1)[0]
    expected = regions(bucket) if bucket else None
    if expected is None or expected == region:
        return None
    return _query_error(
        f"Error parsing the X-Amz-Credential parameter; the region '{region}' is wrong; "
        f"expecting '{expected}'",
        ("Region", expected),
    )


def _check_unsigned(request: Request, signed_headers: str) -> Refusal | None:
    signed = set(signed_headers.split(";"))
    missing = sorted(
        name for name in request.headers if _must_be_signed(name) and name not in signed
    )
    if not missing:
        return None
    return Refusal(
        403,
        "AccessDenied",
        "There were headers present in the request which were not signed",
        (("HeadersNotSigned", ", ".join(missing)),),
    )


def _must_be_signed(header: str) -> bool:
    return header == "host" or (header.startswith("x-amz-") and header not in _UNSIGNED_OK)


def _check_key(
    request: Request,
    params: Mapping[str, str],
    scope: list[str],
    key: SigningKey | None,
    now: datetime,
) -> Refusal | None:
    access_key_id = scope[0]
    if key is None:
        return None  # a key the emulator does not know: looser than S3 (module docstring)
    token = request.param("X-Amz-Security-Token")
    if not key.active or (key.session_token and token is None):
        return Refusal(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            (("AWSAccessKeyId", access_key_id),),
        )
    if token is not None and token != key.session_token and access_key_id != LOCAL_ACCESS_KEY:
        return Refusal(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    if key.expiration is not None and now >= key.expiration:
        return Refusal(400, "ExpiredToken", "The provided token has expired.")
    return _check_signature(request, params, scope, key.secret)


def _check_signature(
    request: Request, params: Mapping[str, str], scope: list[str], secret: str
) -> Refusal | None:
    canonical = canonical_request(request, params["X-Amz-SignedHeaders"])
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            params["X-Amz-Date"],
            "/".join(scope[1:]),
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    expected = signature(secret, scope, string_to_sign)
    if hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return None
    return Refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        (
            ("AWSAccessKeyId", scope[0]),
            ("StringToSign", string_to_sign),
            ("SignatureProvided", params["X-Amz-Signature"]),
            ("CanonicalRequest", canonical),
        ),
    )


def canonical_request(request: Request, signed_headers: str) -> str:
    """SigV4's canonical request of a presigned S3 request (the path is encoded once)."""
    query = sorted(
        (_encode(key), _encode(value)) for key, value in request.query if key != "X-Amz-Signature"
    )
    names = signed_headers.split(";")
    headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in names
    )
    return "\n".join(
        (
            request.method,
            quote(request.path.encode("utf-8"), safe="/~"),
            "&".join(f"{key}={value}" for key, value in query),
            headers,
            signed_headers,
            request.param("X-Amz-Content-Sha256") or UNSIGNED_PAYLOAD,
        )
    )


def signature(secret: str, scope: list[str], string_to_sign: str) -> str:
    """HMAC-SHA256 of the string to sign under the key derived from date, region, service."""
    key = f"AWS4{secret}".encode()
    for part in scope[1:]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _encode(text: str) -> str:
    return quote(text.encode("utf-8"), safe="-_.~")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class PresignedRequestCheck:
    """WSGI middleware: a presigned S3 request S3 would refuse gets S3's refusal, not moto."""

    def __init__(
        self,
        app: WsgiApp,
        keys: KeyLookup | None = None,
        regions: RegionLookup | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._app = app
        self._keys = keys or emulator_key
        self._regions = regions or emulator_bucket_region
        self._clock = clock or (lambda: datetime.now(UTC))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        if "X-Amz-" not in query and "Signature=" not in query:
            return self._app(environ, start_response)  # not presigned: most requests
        request = Request.from_environ(environ)
        refusal = check(request, self._keys, self._regions, self._clock())
        if refusal is None:
            return self._app(environ, start_response)
        request_id = secrets.token_hex(8).upper()
        body = refusal.body(request_id)
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
        ]
        if "origin" in request.headers:
            # moto answers every origin (its global CORS); an error must reach the page too.
            headers.append(("Access-Control-Allow-Origin", "*"))
        start_response(f"{refusal.status} {_REASONS[refusal.status]}", headers)
        return [b""] if request.method == "HEAD" else [body]


_REASONS = {400: "Bad Request", 403: "Forbidden"}
