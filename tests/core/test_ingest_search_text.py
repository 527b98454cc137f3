"""Ingest hands the store each object's searchable text, taken from the parsed object, so indexing a
new version does not parse its body again. That text must be exactly what the store would read from
the stored body, or a version would be found by words it does not hold (or missed by words it does)."""

from __future__ import annotations

from typing import Any

from bench.gen_stix import generate
from kizuna.core.ingest import prepare
from kizuna.store.base import NewVersion
from kizuna.store.search_index import text_of


def _japanese_report() -> dict[str, Any]:
    return {
        "type": "report", "spec_version": "2.1", "id": "report--6b5f2f9e-8c1d-4a57-9d2b-3f1e2a7c4b10",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
        "name": "標的型攻撃メール", "published": "2026-03-01T00:00:00Z", "description": "nul\u0000byte",
        "object_refs": ["indicator--0c7b5a3c-1d2e-4f60-8a9b-7c6d5e4f3a21"],
    }


def test_the_text_ingest_gives_is_the_text_of_the_stored_body() -> None:
    objects = [*generate(400), _japanese_report()]
    compared = 0
    for obj in objects:
        new = prepare(obj)
        assert isinstance(new, NewVersion), new
        assert new.text == text_of(new.body), obj["id"]
        compared += 1
    assert compared == len(objects)

