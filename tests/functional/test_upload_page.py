"""The browser upload page, served by the upload API handler at GET / and shipped in the zip.

The page's behaviour in a browser is tested end to end in tests/e2e/test_upload_page.py; here,
what the handler answers: the page itself, without an API key and without touching AWS, under
a Content-Security-Policy that admits exactly its inline script and style.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeContext
from upload_builders import http_event

from filegate import package
from filegate.uploads import api

PAGE = Path(api.__file__).with_name("page.html").read_text(encoding="utf-8")


@pytest.fixture
def page_response() -> Iterator[dict[str, Any]]:
    api.upload_page.cache_clear()
    api.build_service.cache_clear()
    # GIVEN no AWS and no key at all: the page must need neither
    yield api.lambda_handler(http_event("GET", "/"), FakeContext())
    api.upload_page.cache_clear()


def csp_hash(content: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(content.encode()).digest()).decode() + "'"


def test_get_root_serves_the_page_as_html(page_response: dict[str, Any]) -> None:
    assert page_response["statusCode"] == 200
    assert page_response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert page_response["body"] == PAGE
    assert 'id="api-key"' in page_response["body"]
    assert api.build_service.cache_info().currsize == 0, "the page must not build AWS clients"


def test_the_policy_admits_only_the_pages_own_inline_script_and_style(
    page_response: dict[str, Any],
) -> None:
    policy = dict(
        part.strip().split(" ", 1)
        for part in page_response["headers"]["Content-Security-Policy"].split(";")
    )
    script = re.search(r"<script>(.*?)</script>", PAGE, re.DOTALL)
    style = re.search(r"<style>(.*?)</style>", PAGE, re.DOTALL)
    assert script is not None
    assert style is not None
    assert policy["script-src"] == csp_hash(script.group(1))
    assert policy["style-src"] == csp_hash(style.group(1))
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert page_response["headers"]["X-Content-Type-Options"] == "nosniff"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\(|<img\b|<iframe\b", PAGE)
    assert len(re.findall(r"<script>", PAGE)) == 1
    assert len(re.findall(r"<style>", PAGE)) == 1
    assert not re.search(r"\son[a-z]+=|\sstyle=", PAGE), "inline handlers and styles break the CSP"


def test_the_zip_ships_the_page(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    with zipfile.ZipFile(built.path) as archive:
        assert archive.read("filegate/uploads/page.html").decode() == PAGE
