"""Streaming bundle reader: same objects as json.load, right line numbers, errors where they are."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects, iter_bundle_objects_raw

FIXTURES = Path(__file__).parent / "fixtures"
REAL_FILES = sorted(p for p in FIXTURES.rglob("*.json"))


def stream(data: bytes, chunk_size: int = 1 << 20, name: str = "bundle.json") -> list[tuple[int, Any]]:
    return list(iter_bundle_objects(io.BytesIO(data), name, chunk_size=chunk_size))


def expected_objects(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if "objects" not in document and document.get("type", "bundle") != "bundle":
        return [document]  # a file that is one bare STIX object
    return document.get("objects", [])


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_bundles_match_json_load(path: Path) -> None:
    data = path.read_bytes()
    expected = expected_objects(json.loads(data))
    for chunk_size in (1 << 20, 4096, 13):
        assert [obj for _, obj in stream(data, chunk_size)] == expected


def test_tiny_buffers_split_objects_anywhere() -> None:
    data = (FIXTURES / "oasis" / "sighting-of-an-indicator.json").read_bytes()
    expected = stream(data)
    assert len(expected) >= 3
    for chunk_size in range(1, 18):
        assert stream(data, chunk_size) == expected


def lay_out(elements: list[Any], separators: list[str], envelope: str) -> tuple[bytes, list[int]]:
    """A file holding ``elements`` with the given whitespace, and the line each element starts on."""
    head = {
        "bundle": '{"type": "bundle",\n "id": "bundle--1",\n "objects": [',
        "envelope": '{"objects":[',
        "array": "[",
    }
    text = head[envelope]
    lines = []
    for index, element in enumerate(elements):
        text += separators[index % len(separators)]
        lines.append(text.count("\n") + 1)
        text += json.dumps(element, indent=separators[index % len(separators)].count(" ") or None)
        text += "," if index < len(elements) - 1 else ""
    text += "\n]" + ("" if envelope == "array" else ', "more": false}\n')
    return text.encode(), lines


@pytest.mark.parametrize("envelope", ["bundle", "envelope", "array"])
def test_line_numbers_are_where_each_element_starts(envelope: str) -> None:
    elements = [{"type": "note", "n": n, "nested": {"list": [[n], {"k": "}{"}]}} for n in range(30)]
    data, lines = lay_out(elements, ["\n", "\n\n    ", " ", "\r\n  ", ""], envelope)
    for chunk_size in (1 << 20, 5):
        got = stream(data, chunk_size)
        assert [obj for _, obj in got] == elements
        assert [line for line, _ in got] == lines


def test_big_integers_stay_exact() -> None:
    data = b'{"objects": [{"n": 123456789012345678901234567890, "m": -9223372036854775809}]}'
    assert stream(data, 5) == [(1, {"n": 123456789012345678901234567890, "m": -9223372036854775809})]


def test_raw_bytes_are_the_exact_serialisation() -> None:
    data = b'{"objects": [ {"b": 1,  "a": "\\u00e9"} ,\n{"c": []}]}'
    assert list(iter_bundle_objects_raw(io.BytesIO(data), "x")) == [
        (1, b'{"b": 1,  "a": "\\u00e9"}'),
        (2, b'{"c": []}'),
    ]


TRICKY_STRINGS = [
    "brace } inside",
    "open { brace",
    "bracket ] and [",
    'quote \\" and backslash \\\\',
    "ends with backslash \\",
    "unicode é 日本語 🙂",
    "newline\nand tab\t",
    "\n}\n",
    '"},{"',
]


def test_strings_with_structure_characters_and_escapes() -> None:
    elements = [{"type": "note", "content": s, "list": [s, {"x": s}]} for s in TRICKY_STRINGS]
    for indent in (None, 2, 4):
        text = json.dumps({"type": "bundle", "objects": elements}, indent=indent, ensure_ascii=False)
        for chunk_size in (1 << 20, 3):
            assert [obj for _, obj in stream(text.encode(), chunk_size)] == elements


def test_deep_nesting_and_non_object_elements() -> None:
    deep: Any = "leaf"
    for depth in range(60):
        deep = {"d": [deep, depth]}
    elements = [deep, [1, [2, [3]]], "a string", 12.5, None, True, {}]
    data = json.dumps(elements, indent=1).encode()
    assert [obj for _, obj in stream(data, 7)] == elements


@pytest.mark.parametrize(
    "data",
    [b"{}", b"[]", b' {"objects": []} ', b'{"type": "bundle", "id": "bundle--1"}', b"\xef\xbb\xbf[]"],
)
def test_empty_bundles(data: bytes) -> None:
    assert stream(data) == []


def test_other_envelope_properties_are_skipped_but_checked() -> None:
    data = b'{"more": true, "next": "abc", "x": {"objects": [1]}, "objects": [{"a": 1}], "y": [{"z": "}"}]}'
    assert stream(data, 4) == [(1, {"a": 1})]
    with pytest.raises(BundleSyntaxError):
        stream(b'{"more": tru, "objects": [{"a": 1}]}')


def error_of(data: bytes, chunk_size: int = 1 << 20) -> BundleSyntaxError:
    with pytest.raises(BundleSyntaxError) as caught:
        stream(data, chunk_size)
    return caught.value


def test_garbled_object_reports_its_line() -> None:
    elements = [{"type": "note", "n": n, "content": "x"} for n in range(50)]
    text = json.dumps({"type": "bundle", "objects": elements}, indent=2)
    lines = text.split("\n")
    target = next(i for i, line in enumerate(lines) if '"n": 31' in line)
    lines[target] = lines[target].replace(",", ";")
    for chunk_size in (1 << 20, 64, 1):
        error = error_of("\n".join(lines).encode(), chunk_size)
        assert error.line == target + 1
        assert str(error).startswith(f"bundle.json:{target + 1}: ")


def test_missing_comma_between_elements() -> None:
    data = b'[\n{"a": 1}\n{"b": 2}\n]'
    error = error_of(data)
    assert (error.line, error.message) == (3, "expected ',' or ']' after an element of the objects array, found '{'")


def test_truncated_files_report_the_end_and_the_start_of_the_value() -> None:
    text = json.dumps({"type": "bundle", "objects": [{"type": "note", "n": n} for n in range(20)]}, indent=2)
    data = text.encode()
    seen_lines = set()
    for cut in range(1, len(data) - 1, 37):
        prefix = data[:cut]
        error = error_of(prefix, 16)
        # A prefix of valid JSON has nothing wrong before its end, so the end is what is reported.
        assert error.line == prefix.count(b"\n") + 1
        seen_lines.add(error.line)
        assert "end of file" in error.message or "expected" in error.message
    assert len(seen_lines) > 10
    error = error_of(data[: data.rindex(b'"n": 19')])
    assert "inside the value that starts on line" in error.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty file"),
        (b'"objects"', "expected a STIX bundle"),
        (b'{"objects": {"a": 1}}', "objects must be a JSON array"),
        (b'{"objects": [{"a": 1}]} trailing', "unexpected data after the end"),
        (b'[{"a": [1}]', "mismatched"),
        (b'{"objects": [], "objects": []}', "appears twice"),
        (b'[{"a": 1}, ]', "expected a value"),
    ],
)
def test_malformed_documents(data: bytes, fragment: str) -> None:
    assert fragment in error_of(data).message


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_reading_stays_close_behind_the_consumer() -> None:
    element = {"type": "note", "content": "x" * 500, "object_refs": ["note--1"] * 20}
    data = json.dumps({"type": "bundle", "objects": [element] * 4000}).encode()  # ~3 MB
    chunk_size = 64 * 1024
    reader = CountingReader(data)
    consumed = 0
    for _, raw in iter_bundle_objects_raw(reader, "big.json", chunk_size=chunk_size):
        consumed += len(raw) + 1
        assert reader.bytes_read - consumed <= 2 * chunk_size + len(raw)
    assert consumed > len(data) * 0.95


# Unbounded integers on purpose: numbers must never change on the way in, even past 64 bits.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=5), max_size=6),
    st.sampled_from([None, 0, 1, 3]),
    st.integers(min_value=1, max_value=40),
)
def test_generated_bundles_round_trip(elements: list[dict[str, Any]], indent: int | None, chunk_size: int) -> None:
    data = json.dumps({"objects": elements}, indent=indent, ensure_ascii=False).encode()
    assert [obj for _, obj in stream(data, chunk_size)] == elements
