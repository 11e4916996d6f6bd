"""CloudFormation's Query protocol, for the middleware that serves change sets.

The wire apart from the rules, as moto keeps ``responses.py`` apart from ``models.py``: a
call's form (:func:`is_cloudformation_form`, :func:`form_body`, :class:`Request`),
CloudFormation's XML answers and errors (:func:`ok`,
:class:`Refused`), reading and editing moto's XML answers (:func:`listed`, :func:`edit_list`,
:func:`message`), and calling moto's app with the caller's credentials (:class:`MotoApp`:
CloudFormation, STS's GetCallerIdentity, an S3 GetObject). ``cfn_change_sets`` holds the
rules. This module imports nothing of moto's.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
FORM = "application/x-www-form-urlencoded"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, bytes]  # an HTTP status and a body

ET.register_namespace("", NS)


_FORM = "application/x-www-form-urlencoded"
_SCOPE = "/cloudformation/aws4_request"  # the SigV4 credential scope of a CloudFormation call


def is_cloudformation_form(environ: dict[str, Any]) -> bool:
    """A CloudFormation Query API call (a signed form POST)."""
    content_type = str(environ.get("CONTENT_TYPE", ""))
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and content_type.startswith(_FORM)
        and _SCOPE in authorization
    )


def form_body(environ: dict[str, Any]) -> bytes:
    """The call's form, read once and put back for the app behind."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def respond(start_response: Callable[..., Any], answer: Answer) -> list[bytes]:
    """Send ``answer`` (status, XML) as the WSGI response."""
    status, payload = answer
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


class Refused(Exception):
    """A call CloudFormation refuses: answered with ``code`` and the message."""

    def __init__(self, message: str, code: str = "ValidationError", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    def answer(self) -> Answer:
        body = (
            f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type>'
            f"<Code>{escape(self.code)}</Code><Message>{escape(str(self))}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return self.status, body.encode()


class Request:
    """A CloudFormation call: its form, and the region it was signed for."""

    def __init__(self, environ: dict[str, Any], body: bytes, region: str = "") -> None:
        self.environ = environ
        self.body = body
        self.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        self.region = region

    def get(self, name: str) -> str | None:
        return self.form.get(name, [None])[0]

    def name_stack(self, stack_id: str) -> None:
        """The same call naming the stack by another id."""
        self.form["StackName"] = [stack_id]
        self.body = urlencode(self.form, doseq=True).encode()

    def members(self, prefix: str) -> list[dict[str, str]]:
        """``Prefix.member.N.Field`` entries, in order (Parameters, Tags)."""
        found: dict[int, dict[str, str]] = {}
        for key, values in self.form.items():
            match = re.fullmatch(rf"{prefix}\.member\.(\d+)\.(\w+)", key)
            if match:
                found.setdefault(int(match[1]), {})[match[2]] = values[0]
        return [found[index] for index in sorted(found)]

    def strings(self, prefix: str) -> list[str]:
        """``Prefix.member.N`` entries, in order (Capabilities, StackStatusFilter)."""
        found = {}
        for key, values in self.form.items():
            match = re.fullmatch(rf"{prefix}\.member\.(\d+)", key)
            if match:
                found[int(match[1])] = values[0]
        return [found[index] for index in sorted(found)]


class MotoApp:
    """Calls to moto's app, signed as the caller's call was (moto checks no signature)."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def call(self, request: Request, action: str, params: dict[str, str]) -> Answer:
        return self.form(request, {"Action": action, "Version": "2010-05-15", **params})

    def form(self, request: Request, form: dict[str, str]) -> Answer:
        body = urlencode(form).encode()
        return self._invoke(_inner(request.environ, "cloudformation", body))

    def passed(self, request: Request) -> Answer:
        """moto's answer to the call as it came."""
        return self._invoke(_inner(request.environ, "cloudformation", request.body))

    def account(self, environ: dict[str, Any]) -> str | None:
        """The caller's account, as STS's GetCallerIdentity tells it."""
        call = _inner(environ, "sts", b"Action=GetCallerIdentity&Version=2011-06-15")
        call["HTTP_HOST"] = "sts.amazonaws.com"
        status, body = self._invoke(call)
        return text(parse(body), "Account") if status == 200 else None

    def s3_object(self, environ: dict[str, Any], bucket: str, key: str) -> bytes | None:
        call = _inner(environ, "s3", b"")
        call.update(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": f"/{bucket}/{key}",
                "HTTP_HOST": "s3.amazonaws.com",
            }
        )
        status, body = self._invoke(call)
        return body if status == 200 else None

    def _invoke(self, environ: dict[str, Any]) -> Answer:
        answer: dict[str, str] = {}

        def keep(status: str, *_: Any) -> Callable[[bytes], None]:
            answer["status"] = status
            return lambda _data: None

        body = b"".join(self._app(environ, keep))
        return int(answer["status"].split()[0]), body


def _inner(environ: dict[str, Any], service: str, body: bytes) -> dict[str, Any]:
    """The caller's environ as a form POST of ``body`` to ``service``."""
    skipped = ("RAW_URI", "REQUEST_URI", "HTTP_X_AMZ_CONTENT_SHA256")
    call = {k: v for k, v in environ.items() if k not in skipped}
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    call.update(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": FORM,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "HTTP_AUTHORIZATION": authorization.replace(
                "/cloudformation/aws4_request", f"/{service}/aws4_request"
            ),
        }
    )
    return call


# -------------------------------------------------------------------- XML


def ok(action: str, result: dict[str, Any]) -> Answer:
    """CloudFormation's answer to ``action``."""
    body = (
        f'<{action}Response xmlns="{NS}"><{action}Result>{_render(result)}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return 200, body.encode()


def parse(body: bytes | str) -> ET.Element:
    """moto's answer, or an element of ours: never a caller's bytes."""
    return ET.fromstring(body)  # noqa: S314 - XML the emulator itself wrote


def find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def text(root: ET.Element, name: str) -> str:
    found = find(root, name)
    return (found.text or "") if found is not None else ""


def listed(answer: Answer, name: str) -> list[dict[str, str]]:
    """The members of the list ``name`` in moto's answer, each as its fields' text."""
    status, body = answer
    container = find(parse(body), name) if status == 200 else None
    return [_flat(member) for member in container] if container is not None else []


def edit_list(
    body: bytes, name: str, edit: Callable[[list[ET.Element]], list[ET.Element]]
) -> bytes:
    """moto's answer with the members of the list ``name`` replaced by ``edit``'s."""
    root = parse(body)
    container = find(root, name)
    if container is None:
        return body
    container[:] = edit(list(container))
    return bytes(ET.tostring(root, encoding="utf-8"))


def member(fields: dict[str, Any]) -> ET.Element:
    return parse(f'<member xmlns="{NS}">{_render(fields)}</member>')


def message(body: bytes) -> str:
    """The message of an error moto answered (XML or JSON)."""
    try:
        return text(parse(body), "Message") or body.decode("utf-8", "replace")
    except ET.ParseError:
        pass
    try:
        found = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    if isinstance(found, dict):
        return str(found.get("message") or found.get("Message") or found)
    return str(found)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _flat(element: ET.Element) -> dict[str, str]:
    return {_local(child.tag): child.text or "" for child in element}


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"<{k}>{_render(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "".join(f"<member>{_render(item)}</member>" for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))
