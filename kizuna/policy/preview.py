"""The share preview: before an object is stored, which partners will receive it, and why not.

The console's share form asks this for a draft (its TLP, REL TO and recipients markings) and the
collections it is about to be written to.  The answer is computed by the same compiled viewer policy
(:mod:`kizuna.policy.decide`) that every read applies, once per way a partner receives objects from
this node: a token of its organisation reading a collection, or a federation push of a collection to
its node.  A partner sees the draft when any of those ways does.

Every verdict carries a reason code and parameters, never a sentence: the console renders them in
the reader's language.  :meth:`Verdict.describe` and :func:`summarise` give the English form for the
CLI and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kizuna.policy.decide import Outcome, ViewerPolicy, compile_viewer
from kizuna.policy.model import Agreement, MarkingKind, Organisation, PolicyContext, Viewer
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel

#: Levels a federation push never forwards when this node is not the producer (docs/federation.md).
_STOPS_AT_RECIPIENT: Final = TlpLevel.AMBER_STRICT


@dataclass(frozen=True, slots=True)
class Route:
    """One way a partner receives what this node holds."""

    #: Collection ids it reads (a token's read grants) or that are pushed to it (push mappings).
    collections: frozenset[str]
    #: The agreement it reads under when bound to one; None: its organisation's agreements apply.
    agreement: Agreement | None = None
    #: A federation push rather than a token's read: AMBER+STRICT and RED of other producers stop here.
    push: bool = False


@dataclass(frozen=True, slots=True)
class Partner:
    """An organisation (``key`` its identity id) or a partner node (``key`` ``node:<name>``)."""

    key: str
    name: str
    organisation: Organisation | None
    routes: tuple[Route, ...] = ()

    @property
    def is_node(self) -> bool:
        return self.key.startswith("node:")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one partner will see the draft; when not, a reason code and its parameters."""

    partner: str
    name: str
    sees: bool
    reason: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    #: It sees the draft with parts removed (granular markings) or its producer anonymised.
    redacted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "name": self.name, "sees": self.sees, "reason": self.reason,
                "params": dict(self.params), "redacted": self.redacted}

    def describe(self) -> str:
        """The verdict as one English sentence (the console translates the reason code instead)."""
        if self.sees:
            return f"{self.name} will see this" + (" with parts withheld" if self.redacted else "")
        return f"{self.name} will not see this, because {self.because()}"

    def because(self) -> str:
        p = self.params
        template = REASONS.get(self.reason or "", "the node's policy does not release it to them")
        return template % dict(p)


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Marks a message for the console's catalog (extracted by Babel, translated where it is shown)."""
    return message


#: Why a partner will not receive a draft, by reason code: English here, translated by the console, which
#: extracts these messages into its catalog (kizuna/web/babel.cfg). Placeholders are the verdict's params.
REASONS: Final = {
    "agreement_tlp_ceiling": N_("its agreement stops at %(ceiling)s"),
    "no_agreement_for_tlp": N_("no agreement releases %(tlp)s to it"),
    "producer_not_in_agreement": N_("its agreement does not cover objects of this producer"),
    "tlp_green_outside_community": N_("%(tlp)s is for the node's community and it is not a member"),
    "tlp_red_not_named": N_("%(tlp)s reaches only named recipients"),
    "not_a_recipient": N_("it is not on the recipients list"),
    "not_in_rel_to": N_("it is releasable only to %(rel_to)s and the partner is %(country)s"),
    "unknown_marking": N_("the node does not know marking %(marking)s"),
    "unenforced_marking": N_("marking %(marking)s has no rule this node enforces"),
    "unmarked_tlp": N_("unmarked objects count as %(tlp)s"),
    "collection_not_in_agreement": N_("its agreement does not cover collection %(collection)s"),
    "no_access": N_("no token of it reads %(collections)s"),
    "not_pushed": N_("none of %(collections)s is pushed to it"),
    "stops_at_recipient": N_("%(tlp)s from another producer stops at this node"),
    "all_parts_withheld": N_("every part of it is withheld from them"),
}


def preview(
    draft: Mapping[str, Any], partners: Iterable[Partner], ctx: PolicyContext, collection_ids: Sequence[str],
    own_identities: frozenset[str] = frozenset(), collection_names: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """One verdict per partner for ``draft`` written to ``collection_ids``.

    ``own_identities`` are the node's own organisation(s): a push forwards AMBER+STRICT and RED only of
    objects they produced.  Objects that reference others (relationships, sightings, reports) are judged
    by their own markings here; a partner that cannot see what they point at will not see them either.
    """
    names = collection_names or {}
    return [_verdict(draft, partner, ctx, collection_ids, own_identities, names) for partner in partners]


def summarise(verdicts: Sequence[Verdict]) -> str:
    """"A and B will see this; C will not, because …" in English, for the CLI."""
    seeing = [v.name for v in verdicts if v.sees]
    parts = [f"{_join(seeing)} will see this" if seeing else "No partner will see this"]
    parts += [f"{v.name} will not, because {v.because()}" for v in verdicts if not v.sees]
    return "; ".join(parts)


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _verdict(
    draft: Mapping[str, Any], partner: Partner, ctx: PolicyContext, collection_ids: Sequence[str],
    own_identities: frozenset[str], collection_names: Mapping[str, str],
) -> Verdict:
    first_refusal: Verdict | None = None
    for route in partner.routes:
        for collection_id in collection_ids:
            if collection_id not in route.collections:
                continue
            policy = compile_viewer(
                Viewer(f"preview:{partner.key}", organisation=partner.organisation, agreement=route.agreement),
                ctx, collection_id,
            )
            decision = policy.decide(draft)
            level = _highest_tlp(draft.get("object_marking_refs") or ())
            if decision.visible and route.push and level is not None and level >= _STOPS_AT_RECIPIENT and (
                draft.get("created_by_ref") not in own_identities
            ):
                refusal = Verdict(partner.key, partner.name, False, "stops_at_recipient", {"tlp": level.label})
            elif decision.visible:
                return Verdict(partner.key, partner.name, True,
                               redacted=decision.outcome is Outcome.REDACTED)
            else:
                reason, params = _reason(policy, draft, partner, route, ctx, collection_id)
                if "collection" in params:  # a person reads the verdict: the collection's alias, not its id
                    params = {**params, "collection": collection_names.get(collection_id, collection_id)}
                refusal = Verdict(partner.key, partner.name, False, reason, params)
            first_refusal = first_refusal or refusal
    if first_refusal is not None:
        return first_refusal
    names = {"collections": ", ".join(collection_names.get(c, c) for c in collection_ids)}
    return Verdict(partner.key, partner.name, False, "not_pushed" if partner.is_node else "no_access", names)


def _highest_tlp(refs: Iterable[str]) -> TlpLevel | None:
    levels = [LEVEL_BY_ANY_ID[ref] for ref in refs if ref in LEVEL_BY_ANY_ID]
    return max(levels) if levels else None


def _reason(
    policy: ViewerPolicy, draft: Mapping[str, Any], partner: Partner, route: Route, ctx: PolicyContext,
    collection_id: str,
) -> tuple[str, dict[str, str]]:
    """The policy's refusal code (``ViewerPolicy.explain``) turned into a reason with its parameters."""
    code = policy.explain(draft) or "markings"
    refs = list(draft.get("object_marking_refs") or ())
    level = _highest_tlp(refs)
    tlp = level.label if level is not None else "TLP:CLEAR"
    org_id = partner.organisation.identity_id if partner.organisation else None
    agreements = [route.agreement] if route.agreement is not None else (
        ctx.agreements_for_partner(org_id) if org_id else []
    )
    agreements = [a for a in agreements if a.covers_collection(collection_id)]
    if code == "agreement-collection":
        agreement = route.agreement.agreement_id if route.agreement else ""
        return "collection_not_in_agreement", {"collection": collection_id, "agreement": agreement}
    if code == "agreement-cap" or (code.startswith("tlp-") and code != "tlp-red" and agreements):
        if level is not None and any(a.max_tlp >= level for a in agreements):
            return "producer_not_in_agreement", {"tlp": tlp}
        ceiling = max((a.max_tlp for a in agreements), default=TlpLevel.CLEAR)
        return "agreement_tlp_ceiling", {"ceiling": ceiling.label, "tlp": tlp}
    if code == "tlp-green":
        return "tlp_green_outside_community", {"tlp": tlp}
    if code == "tlp-red":
        return "tlp_red_not_named", {"tlp": tlp}
    if code.startswith("tlp-"):
        return "no_agreement_for_tlp", {"tlp": tlp}
    if code == "rel-to":
        return "not_in_rel_to", _rel_to_params(refs, partner, ctx)
    if code == "recipients":
        return "not_a_recipient", {}
    if code in ("unknown-marking", "unenforced-marking"):
        kind = None if code == "unknown-marking" else MarkingKind.UNENFORCED
        marking = next((r for r in refs if _kind(ctx, r) is kind), "")
        return code.replace("-", "_"), {"marking": marking}
    if code == "unmarked-tlp":
        unmarked = ctx.options.unmarked_tlp
        return "unmarked_tlp", {"tlp": unmarked.label if unmarked is not None else ""}
    if code == "granular":
        return "all_parts_withheld", {}
    return code.replace("-", "_"), {}


def _kind(ctx: PolicyContext, marking_id: str) -> MarkingKind | None:
    info = ctx.marking(marking_id)
    return info.kind if info is not None else None


def _rel_to_params(refs: Sequence[str], partner: Partner, ctx: PolicyContext) -> dict[str, str]:
    tokens: set[str] = set()
    for ref in refs:
        info = ctx.marking(ref)
        if info is not None and info.kind is MarkingKind.REL_TO:
            tokens |= info.tokens
    country = partner.organisation.country if partner.organisation and partner.organisation.country else "unknown"
    return {"rel_to": ", ".join(sorted(tokens)), "country": country}
