"""The one policy decision: (viewer, object version) -> hidden / visible / visible-redacted.

Hot path design: ``compile_viewer`` precomputes everything that depends only on the viewer (its
identities, REL TO tokens, communities, agreements), and the compiled ``ViewerPolicy`` caches verdicts
by ``(created_by_ref, object_marking_refs)``. An object without granular markings then costs a few
dictionary look-ups. The rules themselves are stated in docs/policy.md.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from kizuna.policy.model import ANY, Agreement, MarkingKind, PolicyContext, Viewer, relay_floor
from kizuna.policy.redact import Path, RedactionPlan, parse_selector
from kizuna.policy.releasability import RELEASABILITY_EXTENSION_ID
from kizuna.policy.tlp import TlpLevel

StixObject = Mapping[str, Any]


class Outcome(enum.Enum):
    HIDDEN = "hidden"
    VISIBLE = "visible"
    REDACTED = "visible-redacted"


@dataclass(frozen=True, slots=True)
class Decision:
    """Result of ``decide``. For REDACTED, ``redacted`` is the object the viewer may receive."""

    outcome: Outcome
    redacted: dict[str, Any] | None = None

    @property
    def visible(self) -> bool:
        return self.outcome is not Outcome.HIDDEN

    def view(self, original: StixObject) -> StixObject | None:
        """What to serve: the original, the redacted copy, or None (as if the object did not exist)."""
        if self.outcome is Outcome.VISIBLE:
            return original
        return self.redacted


VISIBLE: Final = Decision(Outcome.VISIBLE)
HIDDEN: Final = Decision(Outcome.HIDDEN)

_CACHE_LIMIT: Final = 8192
_SHARED_LIMIT: Final = 1024  # (viewer, collection, generation) keys held by one context


class SharedCaches(NamedTuple):
    """The verdict caches shared by the policies compiled for one viewer, collection and context generation.
    Plain dicts: their values follow from the key alone, so concurrent requests may fill them in any order."""

    permits: dict[tuple[Any, ...], bool]
    plans: dict[Any, RedactionPlan]
    columns: dict[Any, Any]
    #: the digest of the terms (``ViewerPolicy.terms``) under its one key, None
    terms: dict[None, str]


class ViewerPolicy:
    """The policy compiled for one viewer (and optionally one collection). Not thread-safe: compile one
    per request or per worker; compiling is cheap."""

    def __init__(self, viewer: Viewer, ctx: PolicyContext, collection_id: str | None = None) -> None:
        self.viewer = viewer
        self.ctx = ctx
        self.collection_id = collection_id
        self._compile()

    # -- compilation --------------------------------------------------------------------------------

    def _compile(self) -> None:
        ctx, viewer, options = self.ctx, self.viewer, self.ctx.options
        org = viewer.organisation
        self._generation = ctx.generation
        self._markings = ctx.markings_by_id
        self._sees_everything = viewer.unrestricted or (viewer.is_node_admin and options.admins_see_everything)
        self._ceiling = viewer.tlp_ceiling
        identities = {i for i in (org.identity_id if org else None, viewer.identity_id) if i}
        self._own: frozenset[str] = frozenset(identities)
        self._identities = self._own
        governing = viewer.agreement
        self._cap: TlpLevel | None = governing.max_tlp if governing is not None else None
        # An agreement is made with one partner: a principal of another organisation bound to it (a binding
        # made before such bindings were refused, or an agreement whose partner changed since) sees nothing.
        foreign = (governing is not None and org is not None and not governing.partner.startswith("node:")
                   and governing.partner != org.identity_id)
        self._blocked = governing is not None and (foreign or not governing.covers_collection(self.collection_id))
        direct: list[Agreement]
        if governing is not None:
            direct = [governing]
        elif org is not None:
            direct = ctx.agreements_for_partner(org.identity_id)
        else:
            direct = []
        direct = [a for a in direct if a.covers_collection(self.collection_id)]
        self._direct = direct
        clients: list[Agreement] = []
        if org is not None and governing is None:
            for patron in org.client_of:
                clients.extend(
                    a for a in ctx.agreements_for_partner(patron)
                    if a.amber_extends_to_clients and a.covers_collection(self.collection_id)
                )
        self._clients = clients
        tokens = set(identities)
        if org is not None and org.country:
            tokens.add(org.country.upper())
        for agreement in direct:
            tokens.update(agreement.releasability)
        self._tokens: frozenset[str] = frozenset(tokens)
        self._community = bool(org is not None and org.communities & ctx.shared_communities)
        #: From this TLP level up, a version received from a partner node is hidden from this viewer (model.py)
        self.relay_floor = None if viewer.unrestricted else relay_floor(org, ctx.home_organisation_id)
        self._unknown_ok = options.unknown_markings == "carry"
        self._unenforced_ok = options.unenforced_markings == "carry"
        self._unmarked_tlp = options.unmarked_tlp
        self._cap_recipients = options.agreement_caps_recipients
        self._anonymous = (
            ctx.anonymous_identity_id
            if governing is not None and governing.anonymise_producer
            else None
        )
        self._producer_identities: frozenset[str] = frozenset()
        if self._anonymous is not None and governing is not None:
            self._producer_identities = frozenset(
                {o.identity_id for o in ctx.organisations()} | (governing.producers - {ANY})
            )
        # The caches hold what follows from the compiled state alone, so every policy compiled for the same
        # viewer and collection from the same context generation shares them: a reader paging through a
        # collection decides each (producer, markings) pair once, not once per page.
        key = (viewer, self.collection_id, self._generation)
        shared = ctx.shared_caches.get(key)
        if shared is None:
            if len(ctx.shared_caches) >= _SHARED_LIMIT:
                ctx.shared_caches.clear()
            shared = ctx.shared_caches[key] = SharedCaches({}, {}, {}, {})
        #: (producer, *marking refs) -> permitted
        self._cache: dict[tuple[Any, ...], bool] = shared.permits
        #: granular-marking shape -> the removal of the selector paths this viewer may not see
        self._plans: dict[Any, RedactionPlan] = shared.plans
        #: for callers deciding stored rows from their columns (core/visibility.py), reset with the others
        self.column_verdicts: dict[Any, Any] = shared.columns
        self._terms = shared.terms

    def _refresh(self) -> None:
        if self._generation != self.ctx.generation:
            self._compile()

    # -- marking rules ------------------------------------------------------------------------------

    def _tlp_permits(self, level: TlpLevel, producer: str | None) -> bool:
        if self._cap is not None and level > self._cap:
            if not (level is TlpLevel.RED and not self._cap_recipients):
                return False
        if level is TlpLevel.CLEAR:
            return True
        if level is TlpLevel.RED:
            return True  # RED admits only named recipients; checked against the recipients markings.
        if level is TlpLevel.GREEN and self._community:
            return True
        for agreement in self._direct:
            if agreement.max_tlp >= level and agreement.covers_producer(producer):
                return True
        if level <= TlpLevel.AMBER:
            for agreement in self._clients:
                if agreement.max_tlp >= level and agreement.covers_producer(producer):
                    return True
        return False

    def permits(self, marking_refs: Iterable[str], producer: str | None) -> bool:
        """Whether every marking in ``marking_refs`` admits this viewer for an object by ``producer``."""
        return self.refusal(marking_refs, producer) is None

    def refusal(self, marking_refs: Iterable[str], producer: str | None) -> str | None:
        """None if every marking admits this viewer, else the reason the first one that does not gives:
        ``unknown-marking``, ``agreement-cap``, ``tlp-<level>`` (e.g. ``tlp-amber-strict``), ``rel-to``,
        ``recipients``, ``unenforced-marking`` or ``unmarked-tlp`` (docs/policy.md, the audit log)."""
        markings = self._markings
        has_tlp = False
        red = False
        named = False
        for ref in marking_refs:
            info = markings.get(ref)
            if info is None:
                if not self._unknown_ok:
                    return "unknown-marking"
                continue
            kind = info.kind
            if kind is MarkingKind.TLP:
                has_tlp = True
                level = info.level
                assert level is not None
                if level is TlpLevel.RED:
                    red = True
                if not self._tlp_permits(level, producer):
                    return self._tlp_refusal(level)
            elif kind is MarkingKind.REL_TO:
                if not (info.tokens & self._tokens):
                    return "rel-to"
            elif kind is MarkingKind.RECIPIENTS:
                if not (info.identities & self._identities):
                    return "recipients"
                named = True
            elif kind is MarkingKind.UNENFORCED:
                if not self._unenforced_ok:
                    return "unenforced-marking"
        if red and not named:
            return "tlp-red"
        if not has_tlp and self._unmarked_tlp is not None:
            if self._unmarked_tlp is TlpLevel.RED or not self._tlp_permits(self._unmarked_tlp, producer):
                return "unmarked-tlp"
        return None

    def _tlp_refusal(self, level: TlpLevel) -> str:
        if self._cap is not None and level > self._cap:
            return "agreement-cap"
        return "tlp-" + level.token.replace("+", "-")

    def _cached_permits(self, refs: Sequence[str], producer: str | None) -> bool:
        key = (producer, *refs)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self.permits(refs, producer)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def terms(self) -> str:
        """A digest of everything compiled here that decides what this viewer may see: the viewer, its
        agreements (direct and as a client), its community, the options. Equal digests see alike; a changed
        one (a widened agreement, say) may see versions it could not before, which a push must offer again,
        and which a TAXII read-out names (``Kizuna-Terms``), so that a pulling partner reads from the start.
        Computed once per viewer, collection and policy generation."""
        self._refresh()
        digest = self._terms.get(None)
        if digest is not None:
            return digest
        compiled = (self.viewer, self._direct, self._clients, self._community, self.ctx.options, self.collection_id,
                    self.ctx.anonymous_identity_id if self._anonymous else None, self.relay_floor)
        digest = self._terms[None] = hashlib.sha256(orjson.dumps(compiled, default=_canonical)).hexdigest()
        return digest

    # -- the decision -------------------------------------------------------------------------------

    def decide(self, obj: StixObject) -> Decision:
        """Decide one object version for this viewer."""
        decision = self._decide(obj)
        if self._ceiling is None or decision.outcome is Outcome.HIDDEN:
            return decision
        return self._under_ceiling(obj, decision, self._ceiling)

    def _decide(self, obj: StixObject) -> Decision:
        if self._generation != self.ctx.generation:
            self._compile()
        if self._sees_everything:
            return VISIBLE
        producer = obj.get("created_by_ref")
        if producer is not None and producer in self._own:
            return VISIBLE
        if self._blocked:
            return HIDDEN
        refs = obj.get("object_marking_refs")
        if refs is None:
            if self._unmarked_tlp is not None and not self._cached_permits((), producer):
                return HIDDEN
        elif not self._cached_permits(refs, producer):
            return HIDDEN
        if self._anonymous is not None and obj.get("type") == "identity" and self._is_anonymised_producer(obj):
            return HIDDEN
        if "granular_markings" in obj:
            return self._decide_granular(obj, refs or (), producer)
        if "extensions" in obj and obj.get("type") == "marking-definition":
            if not self._may_see_marking_definition(obj):
                return HIDDEN
        if self._anonymous is not None and producer is not None:
            return Decision(Outcome.REDACTED, {**obj, "created_by_ref": self._anonymous})
        return VISIBLE

    # -- the TLP ceiling (kizuna export --tlp-max) ----------------------------------------------------

    def _above(self, marking_refs: Iterable[str], ceiling: TlpLevel) -> bool:
        """Whether content marked ``marking_refs`` is above ``ceiling``: a TLP marking above it, or no TLP
        marking while the node's unmarked level is above it."""
        levels = [info.level for info in map(self._markings.get, marking_refs)
                  if info is not None and info.kind is MarkingKind.TLP and info.level is not None]
        if not levels:
            return self._unmarked_tlp is not None and self._unmarked_tlp > ceiling
        return max(levels) > ceiling

    def _under_ceiling(self, obj: StixObject, decision: Decision, ceiling: TlpLevel) -> Decision:
        """``decision`` with what is marked above ``ceiling`` taken out: the whole object when its own markings
        are, else each selector a granular marking above it governs (the object is hidden if that takes a
        required property, as for any redaction)."""
        shown = decision.redacted if decision.redacted is not None else obj
        if self._above(shown.get("object_marking_refs") or (), ceiling):
            return HIDDEN
        entries = shown.get("granular_markings")
        if not isinstance(entries, list):
            return decision
        paths = []
        for entry in entries:
            ref = entry.get("marking_ref") if isinstance(entry, Mapping) else None
            info = self._markings.get(ref) if isinstance(ref, str) else None
            if info is None or info.kind is not MarkingKind.TLP or info.level is None or info.level <= ceiling:
                continue
            for selector in entry.get("selectors") or ():
                path = parse_selector(selector) if isinstance(selector, str) else None
                if path is not None:
                    paths.append(path)
        if not paths:
            return decision
        redacted = RedactionPlan(paths).apply(shown)
        return HIDDEN if redacted is None else Decision(Outcome.REDACTED, redacted)

    def sees_every_marking(self, marking_refs: Sequence[str], producer: str | None) -> bool:
        """Whether ``decide`` is VISIBLE, unredacted, for every object by ``producer`` (not an identity or
        marking definition) whose object-level and granular markings together are ``marking_refs``.

        Every rule but two judges each marking on its own, so when the whole set admits the viewer, so
        does every part of it that a selector or the object level carries.  The two exceptions are
        ruled out: TLP:RED (admitted only beside a recipients marking, which may sit on another
        selector) and an unmarked-TLP level (a part without a TLP marking must pass it by itself).
        """
        if self._generation != self.ctx.generation:
            self._compile()
        if self._ceiling is not None and self._above(marking_refs, self._ceiling):
            return False  # some part of it is above the ceiling (or, for an unmarked part, may be)
        if self._sees_everything or (producer is not None and producer in self._own):
            return True
        if self._blocked or self._anonymous is not None:
            return False
        markings = self._markings
        for ref in marking_refs:
            info = markings.get(ref)
            if info is not None and info.kind is MarkingKind.TLP and info.level is TlpLevel.RED:
                return False
        if self._unmarked_tlp is not None and not self._cached_permits((), producer):
            return False
        return self._cached_permits(marking_refs, producer)

    def _is_anonymised_producer(self, identity: StixObject) -> bool:
        # An anonymising viewer must not receive the identity its objects no longer name: the
        # organisations the node knows, the producers the agreement lists, and any identity that
        # declares itself as its own producer.
        identity_id = identity.get("id")
        if identity_id == self._anonymous or identity_id in self._own:
            return False
        return identity_id in self._producer_identities or identity.get("created_by_ref") == identity_id

    def explain(self, obj: StixObject) -> str | None:
        """Why ``decide(obj)`` hides ``obj`` (a short reason for the audit log), or None if it does not.

        Reasons: those of :meth:`refusal` for object markings, ``agreement-collection`` (the agreement
        does not cover the collection), ``tlp-ceiling`` (marked above the read's ceiling), ``granular`` (a
        redaction removed a required property),
        ``recipients`` (a recipients list not naming the viewer), ``anonymised-producer``.
        """
        if self.decide(obj).outcome is not Outcome.HIDDEN:
            return None
        if self._blocked:
            return "agreement-collection"
        if self._ceiling is not None and self._above(obj.get("object_marking_refs") or (), self._ceiling):
            return "tlp-ceiling"
        producer = obj.get("created_by_ref")
        reason = self.refusal(obj.get("object_marking_refs") or (), producer)
        if reason is not None:
            return reason
        if obj.get("type") == "identity" and self._anonymous is not None:
            return "anonymised-producer"
        if "granular_markings" in obj:
            return "granular"
        if obj.get("type") == "marking-definition":
            return "recipients"
        return "markings"

    def _may_see_marking_definition(self, obj: StixObject) -> bool:
        # A recipients list names who receives TLP:RED content: it is itself shown only to them.
        if RELEASABILITY_EXTENSION_ID not in obj["extensions"]:
            return True
        info = self._markings.get(str(obj.get("id")))
        if info is None or info.kind is not MarkingKind.RECIPIENTS:
            return True
        return bool(info.identities & self._identities)

    def _decide_granular(self, obj: StixObject, refs: Sequence[str], producer: str | None) -> Decision:
        entries = obj["granular_markings"]
        shape: tuple[Any, ...] | None
        plan: RedactionPlan | None
        try:
            shape = (producer, *refs, None, *(
                (entry["marking_ref"], *entry["selectors"]) for entry in entries if "marking_ref" in entry
            ))
            plan = self._plans.get(shape)
            # Entries of exactly a marking and its selectors are all in the shape: the plan may reuse its work.
            same_entries = all(len(entry) == 2 for entry in entries)
        except (TypeError, KeyError):
            shape = plan = None  # malformed markings: decide without the plan cache
            same_entries = False
        if plan is None:
            plan = RedactionPlan(self._denied_paths(entries, refs, producer))
            if shape is not None:
                if len(self._plans) >= _CACHE_LIMIT:
                    self._plans.clear()
                self._plans[shape] = plan
        if not plan:
            if self._anonymous is not None and producer is not None:
                return Decision(Outcome.REDACTED, {**obj, "created_by_ref": self._anonymous})
            return VISIBLE
        redacted = plan.apply(obj, same_entries)
        if redacted is None:
            return HIDDEN
        if self._anonymous is not None and producer is not None:
            redacted["created_by_ref"] = self._anonymous
        return Decision(Outcome.REDACTED, redacted)

    def _denied_paths(self, entries: Any, refs: Sequence[str], producer: str | None) -> tuple[Path, ...]:
        by_path: dict[Path, list[str]] = {}
        if isinstance(entries, list):
            for entry in entries:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("marking_ref"), str):
                    continue
                for selector in entry.get("selectors") or ():
                    path = parse_selector(selector) if isinstance(selector, str) else None
                    if path is not None:
                        by_path.setdefault(path, []).append(entry["marking_ref"])
        denied: list[Path] = []
        for path in by_path:
            # Markings on an ancestor selector also govern this path (a recipients list on
            # ``external_references`` names who may read TLP:RED inside one of its items).
            applying = list(refs)
            for end in range(1, len(path) + 1):
                applying.extend(by_path.get(path[:end], ()))
            if not self._cached_permits(sorted(set(applying)), producer):
                denied.append(path)
        return tuple(denied)

    def decide_many(self, objects: Iterable[StixObject]) -> list[Decision]:
        decide = self.decide
        return [decide(obj) for obj in objects]

    def visible_objects(self, objects: Iterable[StixObject]) -> list[StixObject]:
        """The objects to serve, in order, redacted where needed; hidden ones are simply absent."""
        out: list[StixObject] = []
        decide = self.decide
        for obj in objects:
            decision = decide(obj)
            if decision is VISIBLE:
                out.append(obj)
            elif decision.redacted is not None:
                out.append(decision.redacted)
        return out


def compile_viewer(viewer: Viewer, ctx: PolicyContext, collection_id: str | None = None) -> ViewerPolicy:
    """Compile the policy for one viewer; reuse it for every object of a read."""
    return ViewerPolicy(viewer, ctx, collection_id)


def _canonical(value: Any) -> Any:
    """The sets of the policy model in one order, so that equal terms digest alike in every process."""
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not part of the policy model")


def decide(viewer: Viewer, obj: StixObject, ctx: PolicyContext) -> Decision:
    """Convenience form of ``compile_viewer(viewer, ctx).decide(obj)`` that reuses compiled policies."""
    compiled = ctx.compiled_viewers.get(viewer)
    if compiled is None:
        if len(ctx.compiled_viewers) >= 1024:
            ctx.compiled_viewers.clear()
        compiled = ctx.compiled_viewers[viewer] = ViewerPolicy(viewer, ctx)
    return compiled.decide(obj)
