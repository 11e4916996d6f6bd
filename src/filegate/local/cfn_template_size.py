"""CloudFormation's limit on an inline template, as WSGI middleware around moto's app.

CloudFormation takes at most 51,200 bytes of ``TemplateBody`` in a request (CloudFormation user
guide, "AWS CloudFormation quotas", "Template body size in a request"; API reference,
CreateStack / CreateChangeSet / ValidateTemplate, ``TemplateBody``: "a maximum length of 51,200
bytes") and answers a longer one with 400 ``ValidationError`` ("1 validation error detected:
Value '...' at 'templateBody' failed to satisfy constraint: Member must have length less than
or equal to 51200"). moto takes any size, so a deploy that sent its template inline would pass
locally and fail on AWS. :class:`InlineTemplateLimit` refuses such a request before moto sees
it. A template read from S3 (``TemplateURL``) is not checked here: ``filegate deploy``'s
preflight bounds it (docs/aws-fidelity.md, "Deploys (CloudFormation)"). This module imports
nothing of moto's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from filegate.local.cfn_wire import Refused, form_body, is_cloudformation_form, respond

TEMPLATE_BODY_LIMIT = 51_200  # bytes
_SHOWN = 64  # characters of the refused value quoted in the message

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refusal(template_body: str) -> str | None:
    """CloudFormation's message for ``template_body`` when it is too long; None when it fits."""
    if len(template_body.encode("utf-8")) <= TEMPLATE_BODY_LIMIT:
        return None
    shown = template_body[:_SHOWN] + "..."
    return (
        f"1 validation error detected: Value '{shown}' at 'templateBody' failed to satisfy"
        f" constraint: Member must have length less than or equal to {TEMPLATE_BODY_LIMIT}"
    )


class InlineTemplateLimit:
    """Refuses a CloudFormation request whose ``TemplateBody`` is over 51,200 bytes."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not is_cloudformation_form(environ):
            return self._app(environ, start_response)
        body = form_body(environ)
        template = parse_qs(body.decode("utf-8", "replace")).get("TemplateBody", [""])[0]
        message = refusal(template)
        if message is None:
            return self._app(environ, start_response)
        return respond(start_response, Refused(message).answer())
