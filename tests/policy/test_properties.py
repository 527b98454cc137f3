"""Property tests: random organisations, agreements, viewers and marked objects.

The oracle below restates the rules of docs/policy.md in the most direct form (no caching, no
compilation, per-property marking sets) and the compiled policy is checked against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_world import CREATED, validation_errors

from kizuna.policy import (
    TLP2_IDS,
    Agreement,
    Organisation,
    Outcome,
    PolicyContext,
    TlpLevel,
    Viewer,
    build_recipients_marking,
    build_rel_to_marking,
    compile_viewer,
)
from kizuna.policy.model import ANY
from kizuna.policy.redact import parse_selector

ORG_IDS = [
    "identity--a1b2c3d4-0001-4a00-8000-000000000001",
    "identity--a1b2c3d4-0002-4a00-8000-000000000002",
    "identity--a1b2c3d4-0003-4a00-8000-000000000003",
    "identity--a1b2c3d4-0004-4a00-8000-000000000004",
]
PERSON_IDS = ["identity--b1b2c3d4-0001-4a00-8000-000000000011", "identity--b1b2c3d4-0002-4a00-8000-000000000012"]
COUNTRIES = ["GBR", "JPN", "AUS", "FRA"]
COMMUNITIES = ["uk-jp", "games", "finance"]
UNKNOWN_MARKING = "marking-definition--c1b2c3d4-0001-4a00-8000-0000000000ff"
STATEMENT = {
    "type": "marking-definition", "spec_version": "2.1", "created": CREATED,
    "id": "marking-definition--d1b2c3d4-0001-4a00-8000-0000000000aa",
    "definition_type": "statement", "definition": {"statement": "Copyright"},
}
REL_TOS = [
    build_rel_to_marking(["GBR", "JPN"]),
    build_rel_to_marking(["AUS"]),
    build_rel_to_marking(["FRA"], [ORG_IDS[1]]),
    build_rel_to_marking(identities=[PERSON_IDS[0]]),
]
RECIPIENTS = [
    build_recipients_marking([ORG_IDS[0], PERSON_IDS[1]]),
    build_recipients_marking([ORG_IDS[2]]),
]
TLP_IDS = [TLP2_IDS[level] for level in TlpLevel]
RESTRICTING = [*TLP_IDS, *(m["id"] for m in REL_TOS), UNKNOWN_MARKING, STATEMENT["id"]]
ALL_MARKINGS = [*RESTRICTING, *(m["id"] for m in RECIPIENTS)]
LEVEL = {TLP2_IDS[level]: level for level in TlpLevel}
REL_TO_TOKENS = {
    m["id"]: set(m["extensions"][next(iter(m["extensions"]))].get("rel_to_countries", []))
    | set(m["extensions"][next(iter(m["extensions"]))].get("rel_to_identities", []))
    for m in REL_TOS
}
NAMED = {m["id"]: set(m["extensions"][next(iter(m["extensions"]))]["recipients"]) for m in RECIPIENTS}


@dataclass
class World:
    orgs: list[Organisation]
    agreements: list[Agreement]
    shared: frozenset[str]

    def context(self) -> PolicyContext:
        return PolicyContext(
            marking_definitions=[*REL_TOS, *RECIPIENTS, STATEMENT],
            organisations=self.orgs,
            agreements=self.agreements,
            shared_communities=self.shared,
        )


levels = st.sampled_from(list(TlpLevel))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    orgs = [
        Organisation(
            identity_id=org_id,
            name=f"org{i}",
            country=draw(st.sampled_from(COUNTRIES)),
            communities=frozenset(draw(st.sets(st.sampled_from(COMMUNITIES), max_size=2))),
            client_of=frozenset(draw(st.sets(st.sampled_from([o for o in ORG_IDS if o != org_id]), max_size=2))),
        )
        for i, org_id in enumerate(ORG_IDS)
    ]
    agreements = [
        Agreement(
            agreement_id=f"agr{i}",
            version=1,
            partner=draw(st.sampled_from(ORG_IDS)),
            producers=frozenset(draw(st.one_of(st.just({ANY}), st.sets(st.sampled_from(ORG_IDS), min_size=1)))),
            max_tlp=draw(levels),
            releasability=frozenset(draw(st.sets(st.sampled_from([*COUNTRIES, *ORG_IDS]), max_size=2))),
            amber_extends_to_clients=draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 4)))
    ]
    shared = frozenset(draw(st.sets(st.sampled_from(COMMUNITIES), max_size=2)))
    return World(orgs, agreements, shared)


@st.composite
def viewers(draw: st.DrawFn, world: World) -> Viewer:
    org = draw(st.one_of(st.none(), st.sampled_from(world.orgs)))
    agreement = None
    if org is not None and draw(st.booleans()):
        agreement = Agreement(
            "governing", 1, org.identity_id,
            producers=frozenset(draw(st.one_of(st.just({ANY}), st.sets(st.sampled_from(ORG_IDS), min_size=1)))),
            max_tlp=draw(levels),
            releasability=frozenset(draw(st.sets(st.sampled_from(COUNTRIES), max_size=1))),
        )
    return Viewer(
        principal_id="p",
        organisation=org,
        identity_id=draw(st.one_of(st.none(), st.sampled_from(PERSON_IDS))),
        agreement=agreement,
    )


@st.composite
def marked_objects(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(1000))

    def token() -> str:
        return f"tok{next(counter):03d}z"

    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--e1b2c3d4-0001-4a00-8000-000000000001",
        "created": CREATED,
        "modified": CREATED,
        "name": token(),
        "pattern": f"[domain-name:value = '{token()}.example']",
        "pattern_type": "stix",
        "valid_from": CREATED,
    }
    producer = draw(st.one_of(st.none(), st.sampled_from(ORG_IDS)))
    if producer is not None:
        obj["created_by_ref"] = producer
    if draw(st.booleans()):
        obj["description"] = token()
    n_labels = draw(st.integers(0, 4))
    if n_labels:
        obj["labels"] = [token() for _ in range(n_labels)]
    n_refs = draw(st.integers(0, 3))
    if n_refs:
        obj["external_references"] = [
            {"source_name": token(), "url": f"https://example.org/{token()}",
             **({"description": token()} if draw(st.booleans()) else {})}
            for _ in range(n_refs)
        ]
    refs = draw(st.lists(st.sampled_from(ALL_MARKINGS), max_size=3, unique=True))
    if refs:
        obj["object_marking_refs"] = refs
    selectors = list(_selectors(obj))
    granular = draw(
        st.lists(
            st.fixed_dictionaries({
                "selectors": st.lists(st.sampled_from(selectors), min_size=1, max_size=3, unique=True),
                "marking_ref": st.sampled_from(ALL_MARKINGS),
            }),
            max_size=4,
        )
    )
    if granular:
        obj["granular_markings"] = granular
    return obj


def _selectors(obj: dict[str, Any]) -> list[str]:
    out = ["name", "pattern"]
    if "description" in obj:
        out.append("description")
    if "labels" in obj:
        out.append("labels")
        out.extend(f"labels.[{i}]" for i in range(len(obj["labels"])))
    if "external_references" in obj:
        out.append("external_references")
        for i, ref in enumerate(obj["external_references"]):
            out.append(f"external_references.[{i}]")
            out.extend(f"external_references.[{i}].{key}" for key in ref)
    return out


# -- the oracle -----------------------------------------------------------------------------------


def oracle_permits(world: World, viewer: Viewer, refs: set[str], producer: str | None) -> bool:
    org = viewer.organisation
    me = {i for i in (org.identity_id if org else None, viewer.identity_id) if i}
    if producer in me:
        return True
    governing = viewer.agreement
    if governing is not None:
        direct = [governing]
    else:
        direct = [a for a in world.agreements if org is not None and a.partner == org.identity_id]
    as_client = []
    if org is not None and governing is None:
        as_client = [a for a in world.agreements if a.partner in org.client_of and a.amber_extends_to_clients]
    tokens = set(me) | ({org.country} if org and org.country else set())
    for a in direct:
        tokens |= a.releasability
    named = any(ref in NAMED and NAMED[ref] & me for ref in refs)
    for ref in refs:
        if ref in LEVEL:
            level = LEVEL[ref]
            if governing is not None and level > governing.max_tlp:
                return False
            covered = [a for a in direct if a.max_tlp >= level and a.covers_producer(producer)]
            by_client = [a for a in as_client if a.max_tlp >= level and a.covers_producer(producer)]
            if level == TlpLevel.GREEN:
                in_community = org is not None and bool(org.communities & world.shared)
                if not (in_community or covered or by_client):
                    return False
            elif level == TlpLevel.AMBER:
                if not (covered or by_client):
                    return False
            elif level == TlpLevel.AMBER_STRICT:
                if not covered:
                    return False
            elif level == TlpLevel.RED:
                if not named:
                    return False
        elif ref in REL_TO_TOKENS:
            if not REL_TO_TOKENS[ref] & tokens:
                return False
        elif ref in NAMED:
            if not NAMED[ref] & me:
                return False
        elif ref == STATEMENT["id"]:
            continue
        else:
            return False
    return True


def leaf_tokens(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in leaf_tokens(v, (*path, k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in leaf_tokens(v, (*path, i))]
    if isinstance(value, str) and "tok" in value:
        return [(path, value[value.index("tok"):value.index("tok") + 7])]
    return []


def applying_markings(obj: dict[str, Any]) -> list[tuple[str, set[str]]]:
    """Each token of ``obj`` with the markings that apply to its property (object level and granular)."""
    granular = [
        (parse_selector(s), g["marking_ref"]) for g in obj.get("granular_markings", []) for s in g["selectors"]
    ]
    out = []
    for path, tok in leaf_tokens({k: v for k, v in obj.items() if k != "granular_markings"}):
        applying = set(obj.get("object_marking_refs", []))
        applying |= {ref for sel, ref in granular if sel is not None and path[: len(sel)] == sel}
        out.append((tok, applying))
    return out


def forbidden_tokens(world: World, viewer: Viewer, obj: dict[str, Any]) -> set[str]:
    """Tokens whose property the oracle says this viewer may not see."""
    producer = obj.get("created_by_ref")
    return {tok for tok, applying in applying_markings(obj) if not oracle_permits(world, viewer, applying, producer)}


def served_text(decision_outcome: Outcome, obj: dict[str, Any], redacted: dict[str, Any] | None) -> str:
    if decision_outcome is Outcome.HIDDEN:
        return ""
    return json.dumps(obj if decision_outcome is Outcome.VISIBLE else redacted)


def shown(outcome: Outcome, obj: dict[str, Any], redacted: dict[str, Any] | None) -> set[str]:
    text = served_text(outcome, obj, redacted)
    return {tok for _, tok in leaf_tokens(json.loads(text))} if text else set()


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_nothing_the_rules_forbid_is_visible_and_output_is_valid(data: st.DataObject) -> None:
    world = data.draw(worlds())
    viewer = data.draw(viewers(world))
    obj = data.draw(marked_objects())
    assert validation_errors(obj) == []
    decision = compile_viewer(viewer, world.context()).decide(obj)
    object_level_ok = oracle_permits(world, viewer, set(obj.get("object_marking_refs", [])),
                                     obj.get("created_by_ref"))
    if not object_level_ok:
        assert decision.outcome is Outcome.HIDDEN
        return
    text = served_text(decision.outcome, obj, decision.redacted)
    forbidden = forbidden_tokens(world, viewer, obj)
    for tok in forbidden:
        assert tok not in text
    if decision.outcome is Outcome.REDACTED:
        assert decision.redacted is not None
        assert validation_errors(decision.redacted) == []
    if not forbidden and decision.outcome is not Outcome.REDACTED:
        assert decision.outcome is Outcome.VISIBLE
    if decision.outcome is Outcome.VISIBLE:
        assert not forbidden


@SETTINGS
@given(data=st.data())
def test_producer_sees_everything(data: st.DataObject) -> None:
    world = data.draw(worlds())
    obj = data.draw(marked_objects())
    producer = data.draw(st.sampled_from(world.orgs))
    obj["created_by_ref"] = producer.identity_id
    viewer = Viewer("producer", organisation=producer)
    assert compile_viewer(viewer, world.context()).decide(obj).outcome is Outcome.VISIBLE


@SETTINGS
@given(data=st.data())
def test_adding_a_restriction_never_makes_more_visible(data: st.DataObject) -> None:
    world = data.draw(worlds())
    viewer = data.draw(viewers(world))
    obj = data.draw(marked_objects())
    policy = compile_viewer(viewer, world.context())
    before = policy.decide(obj)
    restricted = dict(obj)
    if data.draw(st.booleans()):
        extra = data.draw(st.sampled_from(RESTRICTING))
        restricted["object_marking_refs"] = list(dict.fromkeys([*obj.get("object_marking_refs", []), extra]))
    else:
        entry = {"selectors": [data.draw(st.sampled_from(_selectors(obj)))],
                 "marking_ref": data.draw(st.sampled_from(RESTRICTING))}
        restricted["granular_markings"] = [*obj.get("granular_markings", []), entry]
    after = policy.decide(restricted)
    if before.outcome is Outcome.HIDDEN:
        assert after.outcome is Outcome.HIDDEN
    assert shown(after.outcome, restricted, after.redacted) <= shown(before.outcome, obj, before.redacted)


@SETTINGS
@given(data=st.data())
def test_cached_and_fresh_policies_agree(data: st.DataObject) -> None:
    world = data.draw(worlds())
    viewer = data.draw(viewers(world))
    objects = data.draw(st.lists(marked_objects(), min_size=1, max_size=5))
    ctx = world.context()
    shared = compile_viewer(viewer, ctx)
    many = shared.decide_many(objects * 2)
    for obj, decision in zip(objects * 2, many, strict=True):
        fresh = compile_viewer(viewer, ctx).decide(obj)
        assert (fresh.outcome, fresh.redacted) == (decision.outcome, decision.redacted)


def _above_ceiling_tokens(obj: dict[str, Any], ceiling: TlpLevel) -> set[str]:
    """Tokens of the properties a TLP marking above ``ceiling`` applies to (object level or a granular selector)."""
    return {tok for tok, applying in applying_markings(obj)
            if any(ref in LEVEL and LEVEL[ref] > ceiling for ref in applying)}


@SETTINGS
@given(data=st.data())
def test_a_tlp_ceiling_takes_out_exactly_what_is_marked_above_it(data: st.DataObject) -> None:
    """`kizuna export --tlp-max`: on top of every other rule, for any reader, the node itself included."""
    world = data.draw(worlds())
    plain = replace(data.draw(viewers(world)), unrestricted=data.draw(st.booleans()))
    ceiling = data.draw(levels)
    obj = data.draw(marked_objects())
    ctx = world.context()
    before = compile_viewer(plain, ctx).decide(obj)
    after = compile_viewer(replace(plain, tlp_ceiling=ceiling), ctx).decide(obj)
    if plain.unrestricted:
        assert before.outcome is Outcome.VISIBLE
    if any(LEVEL.get(ref, TlpLevel.CLEAR) > ceiling for ref in obj.get("object_marking_refs", [])):
        assert after.outcome is Outcome.HIDDEN
    kept = shown(before.outcome, obj, before.redacted) - _above_ceiling_tokens(obj, ceiling)
    if after.outcome is Outcome.HIDDEN:
        return  # hidden whole, or a required property was marked above the ceiling
    served = shown(after.outcome, obj, after.redacted)
    assert served <= kept
    # Exactly those, except that an external reference losing a required property goes whole (as any redaction).
    in_references = {tok for path, tok in leaf_tokens(obj) if path[0] == "external_references"}
    assert served - in_references == kept - in_references
    if after.redacted is not None:
        assert validation_errors(after.redacted) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_version_without_a_producer_is_the_strictest_case_of_its_markings(data: st.DataObject) -> None:
    """What the read path relies on when a collection holds too many (producer, markings) pairs to keep
    (core/stored_shapes.py): a viewer that sees every marking of a set on a version without a producer sees them
    on a version by any producer, whatever agreements (producer lists among them) and options are in force."""
    world = data.draw(worlds())
    viewer = data.draw(viewers(world))
    # TLP levels weighted up: they are where an agreement's producer list decides.
    refs = data.draw(st.lists(st.sampled_from([*TLP_IDS, *TLP_IDS, *ALL_MARKINGS]), max_size=3, unique=True))
    producer = data.draw(st.sampled_from([*ORG_IDS, *PERSON_IDS, "identity--e1b2c3d4-0001-4a00-8000-0000000000ee"]))
    policy = compile_viewer(viewer, world.context())
    if policy.sees_every_marking(refs, None):
        assert policy.sees_every_marking(refs, producer)
