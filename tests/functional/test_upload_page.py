"""The browser upload page, served by the upload API handler at GET / and shipped in the zip.

The page's behaviour in a browser is tested end to end in tests/e2e/test_upload_page.py; here,
what the handler answers: the page itself, with hash-wasm's SHA-256 inlined, without an API key
and without touching AWS, under a Content-Security-Policy that admits exactly its inline scripts
and style and the compiling of WebAssembly; and that the vendored file is the one recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
VENDOR = Path(api.__file__).with_name("vendor")
HASH_WASM = (VENDOR / "sha256.umd.min.js").read_text(encoding="utf-8")
MARKER = "<!-- inline: vendor/sha256.umd.min.js -->"


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
    assert page_response["body"] == PAGE.replace(MARKER, f"<script>{HASH_WASM}</script>")
    assert MARKER in PAGE
    assert 'id="api-key"' in page_response["body"]
    assert api.build_service.cache_info().currsize == 0, "the page must not build AWS clients"


def test_the_policy_admits_only_the_pages_own_inline_script_and_style(
    page_response: dict[str, Any],
) -> None:
    policy = dict(
        part.strip().split(" ", 1)
        for part in page_response["headers"]["Content-Security-Policy"].split(";")
    )
    scripts = re.findall(r"<script>(.*?)</script>", page_response["body"], re.DOTALL)
    style = re.search(r"<style>(.*?)</style>", PAGE, re.DOTALL)
    assert len(scripts) == 2
    assert scripts[0] == HASH_WASM
    assert style is not None
    # hash-wasm's script, the page's own, and WebAssembly: no 'unsafe-eval', no 'unsafe-inline'
    assert policy["script-src"].split() == [
        csp_hash(scripts[0]),
        csp_hash(scripts[1]),
        "'wasm-unsafe-eval'",
    ]
    assert policy["style-src"] == csp_hash(style.group(1))
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert page_response["headers"]["X-Content-Type-Options"] == "nosniff"


def test_the_page_loads_nothing_from_elsewhere(page_response: dict[str, Any]) -> None:
    body = page_response["body"]
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\(|<img\b|<iframe\b", body)
    assert len(re.findall(r"<script>", body)) == 2
    assert len(re.findall(r"<style>", body)) == 1
    assert not re.search(r"\son[a-z]+=|\sstyle=", body), "inline handlers and styles break the CSP"


def test_the_vendored_hash_wasm_is_the_file_its_record_names() -> None:
    # vendor/hash-wasm.json records the npm tarball (its integrity) and the file's own SHA-512
    record = json.loads((VENDOR / "hash-wasm.json").read_text(encoding="utf-8"))
    digest = base64.b64encode(hashlib.sha512((VENDOR / "sha256.umd.min.js").read_bytes()).digest())
    assert record["files"]["sha256.umd.min.js"]["sha512"] == digest.decode()
    assert record["tarball_integrity"].startswith("sha512-")
    assert "@license MIT" in HASH_WASM
    assert "MIT License" in (VENDOR / "LICENSE-hash-wasm").read_text(encoding="utf-8")


def test_the_zip_ships_the_page(tmp_path: Path) -> None:
    built = package.build(tmp_path / "lambda.zip")
    with zipfile.ZipFile(built.path) as archive:
        assert archive.read("filegate/uploads/page.html").decode() == PAGE
        assert archive.read("filegate/uploads/vendor/sha256.umd.min.js").decode() == HASH_WASM
        assert b"MIT License" in archive.read("filegate/uploads/vendor/LICENSE-hash-wasm")
