"""Validation of the upload API's request bodies: every failure names its field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filegate.errors import (
    InvalidRequestError,
    RequestError,
    UnsupportedTypeError,
    UploadTooLargeError,
)
from filegate.uploads.requests import (
    MAX_OBJECT_SIZE,
    CompletedPart,
    PartToSign,
    UploadRequest,
    check_limits,
    is_type_pattern,
    load_json,
    parse_completed_parts,
    parse_completion,
    parse_parts_to_sign,
    parse_upload_request,
)

SHA = "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9"
C1 = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="  # a part's SHA-256, base64
C2 = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
VALID = {"filename": "report.csv", "size": 11, "sha256": SHA, "content_type": "Text/CSV"}
FIELDS = ("filename", "size", "sha256", "content_type")


def body(**changes: Any) -> dict[str, Any]:
    document = {**VALID, **changes}
    return {k: v for k, v in document.items() if v is not ...}


def field_of(document: Any) -> str | None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_upload_request(document)
    assert raised.value.status == 400
    return raised.value.field


def test_a_valid_body_is_normalised() -> None:
    request = parse_upload_request(body(extra="ignored"))

    assert request == UploadRequest("report.csv", 11, SHA.lower(), "text/csv")
    assert request.sha256_base64 == "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="


@pytest.mark.parametrize("name", [name for name in FIELDS if name != "sha256"])
@pytest.mark.parametrize("absent", [..., None])
def test_a_missing_field_is_named(name: str, absent: Any) -> None:
    assert field_of(body(**{name: absent})) == name


@pytest.mark.parametrize("absent", [..., None])
def test_the_sha256_may_be_left_for_the_completion(absent: Any) -> None:
    request = parse_upload_request(body(sha256=absent))

    assert (request.sha256, request.sha256_base64) == (None, None)


def test_a_completion_may_give_the_whole_files_sha256() -> None:
    part = {"part_number": 1, "etag": '"e1"', "checksum_sha256": C1}

    given = parse_completion({"parts": [part], "sha256": SHA})
    left_out = parse_completion({"parts": [part]})

    assert given.sha256 == SHA.lower()
    assert left_out.sha256 is None
    with pytest.raises(InvalidRequestError) as raised:
        parse_completion({"parts": [part], "sha256": "not hex"})
    assert raised.value.field == "sha256"


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "../etc/passwd",
        "a/b.csv",
        "a\\b.csv",
        ".",
        "..",
        "bad\x00name",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "\ud800lone",
        " leading",
        "trailing ",
        "x" * 256,
        "é" * 128,  # 256 bytes in UTF-8
        42,
        ["a"],
    ],
)
def test_bad_filenames_are_400_naming_filename(filename: Any) -> None:
    assert field_of(body(filename=filename)) == "filename"


@pytest.mark.parametrize(
    "filename", ["x" * 255, "é" * 127, "..hidden", "a b+c%d#e?.csv", "数据.csv"]
)
def test_unusual_but_safe_filenames_are_accepted(filename: str) -> None:
    assert parse_upload_request(body(filename=filename)).filename == filename


@pytest.mark.parametrize("size", [0, -1, True, False, 1.0, "11", [11], 10**30 * 1.0])
def test_bad_sizes_are_400_naming_size(size: Any) -> None:
    assert field_of(body(size=size)) == "size"


@pytest.mark.parametrize("sha256", ["", "abc", SHA[:-1], SHA + "0", "g" * 64, 123, SHA[:-1] + " "])
def test_bad_digests_are_400_naming_sha256(sha256: Any) -> None:
    assert field_of(body(sha256=sha256)) == "sha256"


@pytest.mark.parametrize(
    "content_type",
    [
        "",
        "text",
        "text/",
        "/csv",
        "text/csv; charset=utf-8",
        "te xt/csv",
        "a/" + "b" * 254,
        7,
        "*/*",
        "image/*",
    ],
)
def test_bad_content_types_are_400_naming_content_type(content_type: Any) -> None:
    assert field_of(body(content_type=content_type)) == "content_type"


@pytest.mark.parametrize("document", [[], "text", 3, None, [VALID]])
def test_a_body_that_is_not_an_object_is_400_naming_body(document: Any) -> None:
    assert field_of(document) == "body"


@pytest.mark.parametrize(
    ("raw", "is_base64"),
    [
        ("", False),
        (None, False),
        ("{", False),
        ("[" * 100_000, False),
        ("{}x", False),
        ("not base64!", True),
        (b"\xff\xfe", False),
        ("1" * 5000, False),
        ("NaN-ish", False),
    ],
)
def test_malformed_json_is_400_naming_body(raw: Any, is_base64: bool) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        load_json(raw, is_base64)
    assert raised.value.field == "body"


def test_base64_bodies_are_decoded() -> None:
    assert load_json("eyJhIjogMX0=", is_base64=True) == {"a": 1}


def test_size_above_the_partner_limit_is_413() -> None:
    request = parse_upload_request(body(size=101))

    with pytest.raises(UploadTooLargeError) as raised:
        check_limits(request, max_size=100, allowed=())
    assert (raised.value.status, raised.value.field) == (413, "size")


def test_size_above_s3s_limit_is_413_even_without_a_partner_limit() -> None:
    with pytest.raises(UploadTooLargeError):
        check_limits(parse_upload_request(body(size=MAX_OBJECT_SIZE + 1)), None, ())


@pytest.mark.parametrize(
    ("content_type", "allowed", "ok"),
    [
        ("text/csv", (), True),
        ("text/csv", ("text/csv",), True),
        ("image/png", ("image/*",), True),
        ("image/png", ("*/*",), True),
        ("image/png", ("text/csv", "application/json"), False),
        ("image/png", ("image/jpeg",), False),
        ("text/csv", ("TEXT/CSV",), True),
    ],
)
def test_allowed_types_with_wildcards(
    content_type: str, allowed: tuple[str, ...], ok: bool
) -> None:
    request = parse_upload_request(body(content_type=content_type))

    if ok:
        check_limits(request, None, allowed)
    else:
        with pytest.raises(UnsupportedTypeError) as raised:
            check_limits(request, None, allowed)
        assert (raised.value.status, raised.value.field) == (415, "content_type")


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [("text/csv", True), ("image/*", True), ("*/*", True), ("*/png", False), ("csv", False)],
)
def test_type_patterns(pattern: str, ok: bool) -> None:
    assert is_type_pattern(pattern) is ok


def test_completed_parts_are_parsed_in_order() -> None:
    parts = parse_completed_parts(
        {
            "parts": [
                {"part_number": 1, "etag": '"a"', "checksum_sha256": C1},
                {"part_number": 2, "etag": "b", "checksum_sha256": C2},
            ]
        }
    )

    assert parts == (CompletedPart(1, '"a"', C1), CompletedPart(2, "b", C2))


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "parts"),
        ({"parts": []}, "parts"),
        ({"parts": "x"}, "parts"),
        ({"parts": [1]}, "parts[0]"),
        ({"parts": [{"etag": "a", "checksum_sha256": C1}]}, "parts[0].part_number"),
        (
            {"parts": [{"part_number": 0, "etag": "a", "checksum_sha256": C1}]},
            "parts[0].part_number",
        ),
        (
            {"parts": [{"part_number": True, "etag": "a", "checksum_sha256": C1}]},
            "parts[0].part_number",
        ),
        (
            {"parts": [{"part_number": 10_001, "etag": "a", "checksum_sha256": C1}]},
            "parts[0].part_number",
        ),
        ({"parts": [{"part_number": 1}]}, "parts[0].etag"),
        ({"parts": [{"part_number": 1, "etag": '""'}]}, "parts[0].etag"),
        ({"parts": [{"part_number": 1, "etag": "a\nb"}]}, "parts[0].etag"),
        (
            {
                "parts": [
                    {"part_number": 2, "etag": "a", "checksum_sha256": C1},
                    {"part_number": 1, "etag": "b", "checksum_sha256": C1},
                ]
            },
            "parts",
        ),
        (
            {
                "parts": [
                    {"part_number": 1, "etag": "a", "checksum_sha256": C1},
                    {"part_number": 1, "etag": "b", "checksum_sha256": C1},
                ]
            },
            "parts",
        ),
        ({"parts": [{"part_number": 1, "etag": "a"}]}, "parts[0].checksum_sha256"),
        (
            {"parts": [{"part_number": 1, "etag": "a", "checksum_sha256": SHA}]},
            "parts[0].checksum_sha256",
        ),
        (
            {"parts": [{"part_number": 1, "etag": "a", "checksum_sha256": "YQ=="}]},
            "parts[0].checksum_sha256",
        ),
        ([], "body"),
    ],
)
def test_bad_completion_bodies_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_completed_parts(document)
    assert raised.value.field == field


# --- property tests: whatever arrives, the only failure is a RequestError naming a field ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.text(max_size=300) | json_values,
        "size": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
        "sha256": st.from_regex(r"[0-9a-fA-F]{60,66}", fullmatch=True) | json_values,
        "content_type": st.from_regex(r"[a-z*]{1,8}/[a-z.+*-]{1,12}", fullmatch=True) | json_values,
    },
)


def refusal(parse: Callable[[Any], object], document: Any) -> RequestError | None:
    """The RequestError ``parse`` raised, or None; any other exception fails the test."""
    try:
        parse(document)
    except RequestError as exc:
        return exc
    return None


def outcome(document: Any) -> UploadRequest | RequestError:
    try:
        request = parse_upload_request(document)
        check_limits(request, max_size=10**9, allowed=("text/*", "application/json"))
    except RequestError as exc:
        return exc
    return request


@settings(max_examples=400)
@given(bodies | json_values)
def test_any_json_body_is_accepted_or_refused_naming_a_field(document: Any) -> None:
    result = outcome(document)

    if isinstance(result, RequestError):
        assert result.field in (*FIELDS, "body")
        assert result.status in (400, 413, 415)
        assert result.message


@settings(max_examples=400)
@given(st.text(max_size=300))
def test_any_filename_is_accepted_only_when_safe(filename: str) -> None:
    result = outcome(body(filename=filename))

    if isinstance(result, RequestError):
        assert result.field == "filename"
    else:
        assert "/" not in filename
        assert "\\" not in filename
        assert filename not in ("", ".", "..")
        assert len(filename.encode("utf-8")) <= 255
        assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in filename)


@settings(max_examples=200)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_raw_body_parses_or_is_a_400_naming_body(raw: str | bytes) -> None:
    refused = refusal(load_json, raw)

    assert refused is None or refused.field == "body"


@settings(max_examples=200)
@given(st.fixed_dictionaries({}, optional={"parts": json_values}) | json_values)
def test_any_completion_body_parses_or_names_a_field(document: Any) -> None:
    refused = refusal(parse_completed_parts, document)

    if refused is not None:
        assert refused.field is not None
        assert refused.field.split("[")[0].split(".")[0] in ("parts", "body")


def test_documented_example_round_trips() -> None:
    document = json.loads(json.dumps(VALID))

    assert parse_upload_request(document).size == 11


part_lists = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "part_number": st.integers(min_value=-2, max_value=12_000) | json_values,
            "checksum_sha256": st.sampled_from([C1, C2, SHA, "", "YQ=="]) | json_values,
        },
    )
    | json_values,
    max_size=8,
)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries({}, optional={"parts": part_lists | json_values}) | json_values,
    st.integers(min_value=1, max_value=10_000),
)
def test_any_sign_parts_body_gives_distinct_parts_of_the_plan_or_names_a_field(
    document: Any, part_count: int
) -> None:
    refused = refusal(lambda d: parse_parts_to_sign(d, part_count), document)

    if refused is not None:
        assert refused.status == 400
        assert refused.field is not None
        assert refused.field.split("[")[0] in ("parts", "body")
    else:
        parts = parse_parts_to_sign(document, part_count)
        numbers = [part.part_number for part in parts]
        assert len(set(numbers)) == len(numbers)
        assert all(1 <= n <= part_count for n in numbers)
        assert all(part.checksum_sha256 in (C1, C2) for part in parts)


def test_a_page_of_parts_to_sign_is_at_most_1000_parts() -> None:
    assert parse_parts_to_sign({"parts": []}, 3) == ()
    page = {"parts": [{"part_number": n, "checksum_sha256": C1} for n in range(1, 1_001)]}
    assert len(parse_parts_to_sign(page, 10_000)) == 1_000
    assert parse_parts_to_sign(page, 10_000)[0] == PartToSign(1, C1)
    too_many = {"parts": [{"part_number": n, "checksum_sha256": C1} for n in range(1, 1_002)]}
    refused = refusal(lambda d: parse_parts_to_sign(d, 10_000), too_many)
    assert refused is not None
    assert refused.field == "parts"
    assert "pages" in refused.message


def test_a_part_to_sign_needs_its_sha256_in_base64() -> None:
    for checksum in (None, SHA, "YQ==", 7):
        document = {"parts": [{"part_number": 1, "checksum_sha256": checksum}]}
        refused = refusal(lambda d: parse_parts_to_sign(d, 2), document)
        assert refused is not None
        assert refused.field == "parts[0].checksum_sha256"
