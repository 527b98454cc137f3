"""The searchable text leaves out a field another field holds whole (stix/search_text.py): the fast check
agrees with the rule as stated, part by part, on generated parts, separator characters and empty parts included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.stix.search_text import _without_contained, searchable_text


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
