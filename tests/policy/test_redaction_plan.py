"""A redaction prepared once per granular-marking shape gives, object after object, what a fresh one gives.

The policy keeps one `RedactionPlan` per (producer, markings, selectors) shape and remembers the
re-addressed granular markings per outcome of the removal. Objects of one shape differ in what the
selectors find (a shorter list, a missing property), so the remembered markings must follow the outcome,
not the shape alone; and a viewer whose agreement changes gets a new plan.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.policy import TLP2_IDS, Organisation, PolicyContext, TlpLevel, Viewer, compile_viewer
from kizuna.policy.decide import Outcome
from kizuna.policy.model import Agreement
from kizuna.policy.redact import (
    Path,
    RedactionPlan,
    _build_trie,
    _prune,
    _prune_items,
    _Removal,
    _top_level_items,
    parse_selector,
    remove_paths,
)

GREEN, AMBER_STRICT = TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.AMBER_STRICT]
PRODUCER = "identity--6d1b1e0e-3d6b-4f32-9d7b-0a1f3c8f4e01"
PARTNER = "identity--9a3c6e35-2a7e-4d0c-8a61-5b1e2c3d4f02"


def _indicator(labels: list[str] | None, description: bool = True, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": "indicator--0f4b2f4e-55d3-4c1a-9a0e-1f2e3d4c5b6a",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "created_by_ref": PRODUCER,
        "object_marking_refs": [GREEN], "pattern": "[ipv4-addr:value = '10.0.0.1']", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        "granular_markings": [{"selectors": ["labels.[1]", "labels.[2]"], "marking_ref": AMBER_STRICT},
                              {"selectors": ["labels.[3]", "description"], "marking_ref": GREEN}],
    }
    if labels is not None:
        obj["labels"] = labels
    if description:
        obj["description"] = "Seen scanning"
    obj.update(extra)
    return obj


SAME_SHAPE = [
    _indicator(["a", "b", "c", "d"]), _indicator(["a", "b"]), _indicator(["a"]), _indicator(None),
    _indicator(["a", "b", "c", "d", "e"], description=False), _indicator(["b", "c"]), _indicator(["a", "b", "c", "d"]),
]


def test_a_plan_reused_across_objects_of_one_shape_matches_a_fresh_removal() -> None:
    paths = (parse_selector("labels.[1]"), parse_selector("labels.[2]"))
    plan = RedactionPlan(p for p in paths if p is not None)
    outcomes = set()
    for obj in SAME_SHAPE * 2:  # the second round is served from what the plan remembered
        fresh = remove_paths(obj, plan.paths)
        assert plan.apply(obj, same_entries=True) == fresh
        outcomes.add(repr(fresh["granular_markings"] if fresh else None))
    assert len(outcomes) >= 3  # the objects of one shape do lead to different re-addressed markings


def test_the_policy_redacts_each_object_of_a_shape_as_a_fresh_decision_would() -> None:
    partner = Organisation(PARTNER, "JPCERT/CC")
    agreement = Agreement("jp", 1, PARTNER, max_tlp=TlpLevel.AMBER)
    ctx = PolicyContext(organisations=[partner], agreements=[agreement])
    viewer = Viewer("jp", organisation=partner)
    policy = compile_viewer(viewer, ctx)
    for obj in SAME_SHAPE * 2:
        decision = policy.decide(obj)
        reference = compile_viewer(viewer, PolicyContext(organisations=[partner], agreements=[agreement])).decide(obj)
        assert decision == reference
        if len(obj.get("labels", ())) > 1:
            assert decision.outcome is Outcome.REDACTED and decision.redacted is not None
            assert decision.redacted["labels"] == [obj["labels"][0], *obj["labels"][3:]]
    # A wider agreement is a new context generation: the plans it shared are not used again.
    wider = PolicyContext(organisations=[partner], agreements=[Agreement("jp", 2, PARTNER,
                                                                         max_tlp=TlpLevel.AMBER_STRICT)])
    assert compile_viewer(viewer, wider).decide(SAME_SHAPE[0]).outcome is Outcome.VISIBLE


_VALUES = st.one_of(
    st.lists(st.sampled_from(["a", "b", {"k": "v"}]), max_size=4),
    st.dictionaries(st.sampled_from(["k", "0"]), st.just("v"), max_size=2),
    st.sampled_from(["text", 3]),
)
_PATHS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["labels", "aliases", "description", "extra"])),
    st.tuples(st.sampled_from(["labels", "aliases", "description", "extra"]), st.integers(0, 4)),
), max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["labels", "aliases", "description", "extra"]), _VALUES), _PATHS)
def test_top_level_item_removal_prunes_as_the_trie_does(extra: dict[str, Any], paths: list[Path]) -> None:
    obj = {**_indicator(None, description=False), **extra}
    obj.pop("granular_markings")
    items = _top_level_items(paths)
    assert items is not None
    by_items, by_trie = _Removal(), _Removal()
    pruned = _prune_items(obj, items, by_items)
    expected, _ = _prune(obj, _build_trie(paths), (), by_trie)
    assert (pruned, by_items.removed, by_items.shifts) == (expected, by_trie.removed, by_trie.shifts)
    assert _top_level_items([("labels", 0, "x")]) is None and _top_level_items([("labels", "k")]) is None


_NAMES_AND_REQUIRED = st.sampled_from(["labels", "aliases", "description", "pattern"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["labels", "aliases", "description", "extra"]), _VALUES),
       st.lists(st.one_of(st.tuples(_NAMES_AND_REQUIRED), st.tuples(_NAMES_AND_REQUIRED, st.integers(0, 4))),
                max_size=5),
       st.sampled_from(["indicator", "note", "location"]))
def test_a_remembered_item_removal_gives_what_the_general_path_gives(
    extra: dict[str, Any], paths: list[Path], stix_type: str
) -> None:
    # The read path's shortcut for `labels.[1]`-like plans (RedactionPlan._apply_items) against the general
    # removal, on objects whose removal empties lists, drops a required property (an indicator's pattern; a
    # location lacks what it needs from the start) and re-addresses the markings.
    obj = {**_indicator(None, description=False), **extra, "type": stix_type}
    plan = RedactionPlan(paths)
    for _ in range(2):  # the second time the re-addressed markings come from the plan's memory
        assert plan.apply(obj, same_entries=True) == remove_paths(obj, paths)
