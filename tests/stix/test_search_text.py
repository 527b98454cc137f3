"""The searchable text leaves out a field another field holds whole (stix/search_text.py): the fast check
agrees with the rule as stated, part by part, on generated parts, separator characters and empty parts included;
and a query's terms are looked for as the index holds text (without NUL)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.stix.search_text import _without_contained, query_terms, searchable_text


def stated_rule(parts: list[str]) -> list[str]:
    """``parts`` less each one found whole inside another, the first of equal ones kept; more than 16 parts
    are kept as they are (the check is quadratic)."""
    if len(parts) < 2 or len(parts) > 16:
        return parts
    return [part for i, part in enumerate(parts)
            if not any(j != i and part in other and (len(other) > len(part) or j < i)
                       for j, other in enumerate(parts))]


@settings(max_examples=2000)
@given(st.lists(st.text(alphabet="ab\x00攻", max_size=5), max_size=8))
def test_the_fast_check_keeps_what_the_rule_keeps(parts: list[str]) -> None:
    assert _without_contained(parts) == stated_rule(parts)


def test_an_indicators_name_inside_its_pattern_is_left_out() -> None:
    indicator = {"type": "indicator", "name": "host.example", "pattern": "[domain-name:value = 'host.example']",
                 "description": "host.example seen in phishing", "labels": ["host.example", "phishing"]}
    assert searchable_text(indicator).split("\n") == [
        "[domain-name:value = 'host.example']", "host.example seen in phishing"]


def stated_text(obj: dict[str, Any]) -> str:
    """The searchable text field by field in the order stix/search_text.py documents: the single text fields,
    the lists of strings, external ids, hash values and a language-content's strings, empty ones left out,
    then the parts another part holds whole."""
    parts: list[str] = []
    for field in ("name", "value", "pattern", "description", "abstract", "content", "explanation", "path",
                  "subject", "display_name", "user_id", "number", "key"):
        value = obj.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(str(value))
    for field in ("aliases", "x_mitre_aliases", "labels", "authors", "roles"):
        value = obj.get(field)
        if isinstance(value, list):
            parts.extend(item for item in value if isinstance(item, str))
    refs = obj.get("external_references")
    if isinstance(refs, list):
        parts.extend(ref["external_id"] for ref in refs
                     if isinstance(ref, dict) and isinstance(ref.get("external_id"), str))
    hashes = obj.get("hashes")
    if isinstance(hashes, dict):
        parts.extend(value for value in hashes.values() if isinstance(value, str))
    if obj.get("type") == "language-content":
        stack = [obj.get("contents")]
        found: list[str] = []
        while stack:  # depth first, in order
            item = stack.pop(0)
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, list):
                stack[:0] = item
            elif isinstance(item, dict):
                stack[:0] = list(item.values())
        parts.extend(found)
    return "\n".join(stated_rule([part for part in parts if part]))[:32_768]


_VALUES = st.one_of(st.text(alphabet="ab 攻\x00", max_size=4), st.integers(-2, 2), st.booleans(), st.none(),
                    st.lists(st.one_of(st.text(alphabet="ab", max_size=3), st.integers(0, 2)), max_size=3),
                    st.dictionaries(st.sampled_from(["MD5", "external_id", "en"]),
                                    st.one_of(st.text(alphabet="ab", max_size=3), st.integers(0, 2)), max_size=2))
_FIELDS = ["type", "name", "value", "pattern", "description", "number", "key", "labels", "aliases", "roles",
           "external_references", "hashes", "contents", "x_other"]


@settings(max_examples=3000)
@given(st.dictionaries(st.sampled_from(_FIELDS), st.one_of(_VALUES, st.lists(_VALUES, max_size=3),
                                                            st.just("language-content")), max_size=8))
def test_the_text_visits_only_the_fields_an_object_has_and_says_what_the_stated_order_says(
    obj: dict[str, Any],
) -> None:
    assert searchable_text(obj) == stated_text(obj)


def test_a_query_is_looked_for_as_the_index_holds_text_without_nul() -> None:
    assert query_terms("tick\x00et phish") == ("ticket", "phish")
    assert isinstance(query_terms("\x00\x00\x00"), str)  # nothing left to search for: a reason, not a query
