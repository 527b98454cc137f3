"""Who reads, under which agreement, and what the node knows about marking definitions.

Everything here is plain configuration data; ``decide.py`` turns it into per-viewer decisions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kizuna.policy.releasability import ReleasabilityError, RelTo, parse_releasability
from kizuna.policy.tlp import (
    LEVEL_BY_ANY_ID,
    LEVEL_BY_OASIS_ID,
    STOPS_AT_RECIPIENT,
    STOPS_BEFORE_NON_CLIENTS,
    TlpLevel,
    level_of_marking_definition,
    tlp1_marking_definitions,
    tlp2_marking_definitions,
)

#: Wildcard for ``Agreement.producers`` and ``Agreement.collections``.
ANY: str = "*"


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation principals belong to, identified by its STIX identity id."""

    identity_id: str
    name: str
    #: ISO 3166-1 alpha-3 code, e.g. ``GBR``; matched against REL TO countries.
    country: str | None = None
    #: Communities it belongs to (e.g. "UK-JP cyber"); TLP:GREEN reaches the ones the node shares with.
    communities: frozenset[str] = frozenset()
    #: Organisations whose client this organisation is (TLP:AMBER may extend to clients, per agreement).
    client_of: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Agreement:
    """A partner agreement from the node's configuration. Only the highest version of an id counts.

    It releases objects produced by ``producers`` to ``partner`` (an organisation identity id, or a
    peer node written as ``node:<name>``).
    """

    agreement_id: str
    version: int
    partner: str
    #: Producer organisations (identity ids) whose objects the agreement releases; ``"*"`` = all.
    producers: frozenset[str] = frozenset({ANY})
    #: Collection ids the partner may read under this agreement; ``"*"`` = all.
    collections: frozenset[str] = frozenset({ANY})
    #: Highest TLP level the partner may receive.
    max_tlp: TlpLevel = TlpLevel.GREEN
    #: REL TO tokens (country codes or identity ids) the partner is vouched to satisfy.
    releasability: frozenset[str] = frozenset()
    #: Replace ``created_by_ref`` with the node's anonymous identity on the way out.
    anonymise_producer: bool = False
    #: Whether the partner's sightings of released objects flow back to the producer.
    sightings_flow_back: bool = False
    #: Whether TLP:AMBER released to the partner also reaches the partner's clients.
    amber_extends_to_clients: bool = False
    #: This version removes the agreement: from it on the agreement releases nothing and is not listed; a
    #: token or partner still bound to it reads nothing (as under an agreement that never existed).
    removed: bool = False

    def covers_producer(self, producer: str | None) -> bool:
        return ANY in self.producers or (producer is not None and producer in self.producers)

    def covers_collection(self, collection_id: str | None) -> bool:
        return collection_id is None or ANY in self.collections or collection_id in self.collections


@dataclass(frozen=True, slots=True)
class Viewer:
    """The principal a read is done for."""

    principal_id: str
    organisation: Organisation | None = None
    #: The principal's own identity (an individual), also matched against recipients and REL TO.
    identity_id: str | None = None
    is_node_admin: bool = False
    #: Set when the principal reads under one partner agreement (e.g. a peer node's sync token). When
    #: unset, the node's agreements naming the principal's organisation as partner apply.
    agreement: Agreement | None = None
    #: The most this read may show (core's ``Principal.tlp_ceiling``): content marked above it is hidden,
    #: selectors marked above it are redacted, on top of every other rule.
    tlp_ceiling: TlpLevel | None = None
    #: Reads as the node itself (its operator or its own organisation): everything, up to ``tlp_ceiling``.
    unrestricted: bool = False


class MarkingKind(enum.Enum):
    TLP = "tlp"
    REL_TO = "rel-to"
    RECIPIENTS = "recipients"
    #: Statement/copyright markings: carried and displayed, never enforced.
    STATEMENT = "statement"
    #: A marking definition the node knows but Kizuna has no rule for (e.g. IEP, PAP, malformed).
    UNENFORCED = "unenforced"


@dataclass(frozen=True, slots=True)
class MarkingInfo:
    """What a marking-definition id means to the policy."""

    kind: MarkingKind
    level: TlpLevel | None = None
    #: REL TO: country codes and identity ids any one of which admits a principal.
    tokens: frozenset[str] = frozenset()
    #: RECIPIENTS: the identity ids named.
    identities: frozenset[str] = frozenset()


def classify_marking_definition(obj: Mapping[str, Any]) -> MarkingInfo:
    """Read what one marking-definition object means."""
    level = level_of_marking_definition(obj)
    if level is not None:
        return MarkingInfo(MarkingKind.TLP, level=level)
    try:
        parsed = parse_releasability(obj)
    except ReleasabilityError:
        return MarkingInfo(MarkingKind.UNENFORCED)
    if isinstance(parsed, RelTo):
        return MarkingInfo(MarkingKind.REL_TO, tokens=parsed.tokens)
    if parsed is not None:
        return MarkingInfo(MarkingKind.RECIPIENTS, identities=parsed.identities)
    if obj.get("definition_type") == "statement":
        return MarkingInfo(MarkingKind.STATEMENT)
    return MarkingInfo(MarkingKind.UNENFORCED)


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """Operator settings. The defaults are the rules of docs/policy.md; each option can only tighten
    them, except ``unknown_markings``/``unenforced_markings`` which an operator may relax knowingly."""

    #: Marking ids the node has no definition for: ``deny`` hides the object/property.
    unknown_markings: Literal["deny", "carry"] = "deny"
    #: Known marking definitions with no Kizuna rule (IEP, PAP, …).
    unenforced_markings: Literal["deny", "carry"] = "deny"
    #: Treat objects (and properties) without any TLP marking as this level; None = no TLP limit.
    unmarked_tlp: TlpLevel | None = None
    #: Node administrators bypass markings (off: administrators see what their organisation sees).
    admins_see_everything: bool = False
    #: Tokens of the node's own organisation (not bound to an agreement) read everything the node
    #: stores: the organisation running the node is the recipient of what it received, and markings
    #: govern what leaves it.  Off: its tokens are judged like any partner's.
    home_organisation_sees_everything: bool = True
    #: An agreement's ``max_tlp`` also caps TLP:RED content that names the partner as a recipient.
    agreement_caps_recipients: bool = True


class PolicyContext:
    """What the node knows: marking definitions by id, organisations, agreements, shared communities.

    The five OASIS TLP 2.0 markings and the TLP 1.0/OpenCTI alias ids are always known. Marking
    definitions cannot be versioned, so the first definition of an id wins and a conflicting redefinition
    is refused. Every change bumps ``generation`` so compiled viewer policies drop their caches.
    """

    def __init__(
        self,
        *,
        marking_definitions: Iterable[Mapping[str, Any]] = (),
        organisations: Iterable[Organisation] = (),
        agreements: Iterable[Agreement] = (),
        shared_communities: Iterable[str] = (),
        options: PolicyOptions | None = None,
        anonymous_identity_id: str | None = None,
        home_organisation_id: str | None = None,
    ) -> None:
        self.options = options or PolicyOptions()
        #: The node's own organisation: the recipient of what partner nodes send it (TLP:AMBER received from
        #: them reaches only this organisation and its clients).
        self.home_organisation_id = home_organisation_id
        self.shared_communities: frozenset[str] = frozenset(shared_communities)
        self.anonymous_identity_id = anonymous_identity_id
        self.generation = 0
        self._markings: dict[str, MarkingInfo] = {
            mid: MarkingInfo(MarkingKind.TLP, level=level) for mid, level in LEVEL_BY_ANY_ID.items()
        }
        self._definitions: dict[str, dict[str, Any]] = {
            o["id"]: o for o in (*tlp2_marking_definitions(), *tlp1_marking_definitions())
        }
        self._organisations: dict[str, Organisation] = {}
        self._agreements: dict[str, Agreement] = {}
        #: Compiled viewer policies reused by ``kizuna.policy.decide.decide``.
        self.compiled_viewers: dict[Viewer, Any] = {}
        #: Verdict caches shared by the viewer policies compiled from this context (``decide.SharedCaches``).
        self.shared_caches: dict[tuple[Viewer, str | None, int], Any] = {}
        for obj in marking_definitions:
            self.add_marking_definition(obj)
        for org in organisations:
            self.add_organisation(org)
        for agreement in agreements:
            self.add_agreement(agreement)

    # -- marking definitions ------------------------------------------------------------------------

    def add_marking_definition(self, obj: Mapping[str, Any]) -> bool:
        """Learn a marking definition; False (and no change) if it conflicts with a known one."""
        marking_id = obj.get("id")
        if obj.get("type") != "marking-definition" or not isinstance(marking_id, str):
            raise ValueError("not a marking-definition")
        known = self._definitions.get(marking_id)
        if known is not None:
            return known == dict(obj) or (marking_id in LEVEL_BY_OASIS_ID and self._same_tlp(obj))
        if marking_id in LEVEL_BY_ANY_ID:
            # Alias ids (TLP 1.0 WHITE carrying TLP:CLEAR, OpenCTI AMBER+STRICT) keep their fixed level.
            return level_of_marking_definition(obj) == LEVEL_BY_ANY_ID[marking_id]
        self._definitions[marking_id] = dict(obj)
        self._markings[marking_id] = classify_marking_definition(obj)
        self.generation += 1
        return True

    def with_definitions(self, definitions: Iterable[Mapping[str, Any]]) -> PolicyContext:
        """A copy that also knows ``definitions`` (e.g. the markings a draft brings), leaving this one as
        it is: a process shares its context between requests."""
        clone = PolicyContext(
            organisations=self._organisations.values(), agreements=self._agreements.values(),
            shared_communities=self.shared_communities, options=self.options,
            anonymous_identity_id=self.anonymous_identity_id, home_organisation_id=self.home_organisation_id,
        )
        clone._markings = dict(self._markings)
        clone._definitions = dict(self._definitions)
        for obj in definitions:
            clone.add_marking_definition(obj)
        return clone

    @staticmethod
    def _same_tlp(obj: Mapping[str, Any]) -> bool:
        return level_of_marking_definition(obj) == LEVEL_BY_OASIS_ID.get(str(obj.get("id")))

    @property
    def markings_by_id(self) -> Mapping[str, MarkingInfo]:
        """Every known marking id and its meaning (read-only; use ``add_marking_definition``)."""
        return self._markings

    def marking(self, marking_id: str) -> MarkingInfo | None:
        return self._markings.get(marking_id)

    def marking_definition(self, marking_id: str) -> dict[str, Any] | None:
        return self._definitions.get(marking_id)

    # -- organisations and agreements ---------------------------------------------------------------

    def add_organisation(self, org: Organisation) -> None:
        self._organisations[org.identity_id] = org
        self.generation += 1

    def organisation(self, identity_id: str) -> Organisation | None:
        return self._organisations.get(identity_id)

    def organisations(self) -> list[Organisation]:
        return list(self._organisations.values())

    def add_agreement(self, agreement: Agreement) -> None:
        """Add or update an agreement; an older version than the one held is ignored."""
        held = self._agreements.get(agreement.agreement_id)
        if held is not None and held.version >= agreement.version:
            return
        self._agreements[agreement.agreement_id] = agreement
        self.generation += 1

    def agreements(self) -> list[Agreement]:
        return list(self._agreements.values())

    def agreements_for_partner(self, partner: str) -> list[Agreement]:
        return [a for a in self._agreements.values() if a.partner == partner]


def relay_floor(organisation: Organisation | None, home: str | None) -> TlpLevel | None:
    """From which TLP level a version this node received from a partner node is hidden from a reader of
    ``organisation`` (unless it made the version or its node sent it; core/visibility.py asks the provenance).
    ``home``, this node's organisation, was the recipient: nothing stops for it (None); TLP 2.0 lets it pass
    TLP:AMBER on to its clients (AMBER+STRICT stops for them) and nothing to anyone else (AMBER stops)."""
    if organisation is not None and home is not None:
        if organisation.identity_id == home:
            return None
        if home in organisation.client_of:
            return STOPS_AT_RECIPIENT
    return STOPS_BEFORE_NON_CLIENTS


def relayed_amber_reach(agreement: Agreement, ctx: PolicyContext) -> Literal["reaches", "withheld", "peer"] | None:
    """What the relay rule means for an agreement in force that releases other producers' TLP:AMBER: ``reaches``
    or ``withheld`` for its partner organisation (AMBER received from partner nodes reaches clients of this
    node's organisation only), ``peer`` for a peer node (the organisation of its partner entry decides); None
    when it releases no other producer's AMBER, or its partner is this node's organisation itself."""
    home = ctx.home_organisation_id
    if home is None or agreement.removed or agreement.max_tlp < TlpLevel.AMBER or not agreement.producers - {home}:
        return None
    if agreement.partner.startswith("node:"):
        return "peer"
    floor = relay_floor(ctx.organisation(agreement.partner), home)
    if floor is None:
        return None
    return "reaches" if floor > TlpLevel.AMBER else "withheld"
