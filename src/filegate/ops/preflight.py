"""``filegate deploy``'s account preflight: what would make the stack's create fail, checked first.

Three checks, each a ``PreflightCheck`` (name, passed, detail, what to do):

- **template size**: ``filegate deploy`` stores the template in the artifact bucket and
  CloudFormation reads it from there (``TemplateURL``), which it takes up to 1 MB (API
  reference, CreateChangeSet, ``TemplateURL``: "max size: 1 MB"; older pages said 460,800
  bytes); inline (``TemplateBody``) it would stop at 51,200 bytes, a limit filegate never
  meets (CloudFormation user guide, "AWS CloudFormation quotas"). 1 MB is read as 1,000,000
  bytes, the lower reading.
- **function URLs in the region**: ``AWS::Lambda::Url`` does not exist in every region; a
  template that uses it cannot even make a change set there (``FUNCTION_URL_MISSING``).
- **unreserved concurrency**: Lambda keeps 100 of the account's concurrency unreserved, so
  functions may reserve up to ``UnreservedConcurrentExecutions`` minus 100 (Lambda developer
  guide, "Configuring reserved concurrency for a function"). The template's reservations (each
  function's ``ReservedConcurrentExecutions`` as resolved for this deploy: a number, or none
  when it resolves to ``AWS::NoValue``) less what this stack's functions reserve already must
  fit; GetAccountSettings says what the account has. A template that reserves nothing passes.

A check that cannot be made (GetAccountSettings refused, say) passes with a detail saying so:
the preflight refuses only what AWS would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

TEMPLATE_SIZE = "template size"
FUNCTION_URLS = "function URLs in region"
CONCURRENCY = "unreserved concurrency"

TEMPLATE_BODY_LIMIT = 51_200  # bytes, TemplateBody of CreateChangeSet (not used by filegate)
TEMPLATE_URL_LIMIT = 1_000_000  # bytes, a template read from S3 (TemplateURL), what filegate sends
MINIMUM_UNRESERVED = 100  # Lambda keeps this much of the account's concurrency unreserved

# The one list: regions where AWS::Lambda::Url does not exist. From cfn-lint's region
# schemas (`cfn-lint --regions ALL_REGIONS`, E3006, cfn-lint 1.x as pinned) and the Lambda
# developer guide ("Creating and managing Lambda function URLs", which lists the commercial
# ones); cn-northwest-1, mx-central-1 and the GovCloud regions come from cfn-lint alone.
FUNCTION_URL_MISSING = frozenset(
    {
        "ap-east-2",
        "ap-south-2",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-west-1",
        "cn-northwest-1",
        "eu-central-2",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "mx-central-1",
        "us-gov-east-1",
        "us-gov-west-1",
    }
)


@dataclass(frozen=True)
class PreflightCheck:
    """One check: passed or not, what was found, and what to do when it failed."""

    name: str
    passed: bool
    detail: str
    remedy: str = ""


def template_size(text: str) -> PreflightCheck:
    """The template as stored in S3 and read by CloudFormation through ``TemplateURL``."""
    size = len(text.encode("utf-8"))
    detail = f"{size:,} bytes read from S3 through TemplateURL (at most {TEMPLATE_URL_LIMIT:,})"
    if size <= TEMPLATE_URL_LIMIT:
        return PreflightCheck(TEMPLATE_SIZE, True, detail)
    return PreflightCheck(
        TEMPLATE_SIZE,
        False,
        detail,
        f"shrink the template below {TEMPLATE_URL_LIMIT:,} bytes, or split it into nested"
        ' stacks (CloudFormation user guide, "AWS CloudFormation quotas")',
    )


def function_urls(region: str, document: Mapping[str, Any]) -> PreflightCheck:
    urls = [n for n, r in document["Resources"].items() if r.get("Type") == "AWS::Lambda::Url"]
    if not urls:
        return PreflightCheck(FUNCTION_URLS, True, "the template has no function URL")
    if region not in FUNCTION_URL_MISSING:
        return PreflightCheck(FUNCTION_URLS, True, f"AWS::Lambda::Url exists in {region}")
    return PreflightCheck(
        FUNCTION_URLS,
        False,
        f"AWS::Lambda::Url does not exist in {region} (the upload API, {', '.join(urls)})",
        "deploy to a region that offers Lambda function URLs, for example eu-central-1 or"
        " us-east-1",
    )


def unreserved_concurrency(
    lambda_client: Any,
    reservations: Mapping[str, int],
    already: Mapping[str, int],
    knobs: list[str],
) -> PreflightCheck:
    """``reservations``: function -> what the template reserves; ``already``: what they
    reserve now (an update); ``knobs``: the parameters that set the reservations."""
    wanted = sum(reservations.values())
    if wanted == 0:
        return PreflightCheck(CONCURRENCY, True, "the template reserves no concurrency")
    try:
        limit = lambda_client.get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        return PreflightCheck(CONCURRENCY, True, f"not checked: GetAccountSettings failed: {exc}")
    unreserved = int(limit["UnreservedConcurrentExecutions"])
    after = unreserved + sum(already.values()) - wanted
    listed = ", ".join(f"{name} {count}" for name, count in reservations.items())
    detail = (
        f"account limit {limit.get('ConcurrentExecutions')}, unreserved {unreserved};"
        f" the template reserves {wanted} ({listed}): {after} would stay unreserved"
        f" (at least {MINIMUM_UNRESERVED})"
    )
    if after >= MINIMUM_UNRESERVED:
        return PreflightCheck(CONCURRENCY, True, detail)
    remedy = "ask for a higher Lambda 'Concurrent executions' quota (Service Quotas, L-B99A9384)"
    if knobs:
        remedy += f", or lower or unset the reservations (--parameter {', '.join(knobs)})"
    return PreflightCheck(CONCURRENCY, False, detail, remedy)


def failure_message(stack: str, checks: list[PreflightCheck]) -> str:
    """Why a deploy refused to start: each failed check and what to do."""
    failed = [f"{c.name}: {c.detail}; {c.remedy}" for c in checks if not c.passed]
    return f"stack {stack} would fail to deploy, so nothing was changed: " + " | ".join(failed)
