"""The node's policy context, built from the store and rebuilt only when the policy changes.

Agreements, organisation communities, operator options and registered marking definitions
live in the store, so every server process sees the same policy.  Each change bumps one
generation counter; a process reads that counter once per request and rebuilds its
:class:`~kizuna.policy.PolicyContext` only when it moved.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import orjson

from kizuna.policy import (
    TLP2_IDS,
    Agreement,
    Organisation,
    PolicyContext,
    PolicyOptions,
    TlpAliasTable,
    TlpLevel,
)
from kizuna.policy.model import ANY
from kizuna.store.base import AgreementRecord, Store

SHARED_COMMUNITIES = "shared_communities"
POLICY_OPTIONS = "policy_options"
ANONYMOUS_IDENTITY = "anonymous_identity"

_AGREEMENT_FLAGS = ("anonymise_producer", "sightings_flow_back", "amber_extends_to_clients")
#: Fixed, so storing the anonymous identity again is a duplicate of the same version, not a new one.
_ANONYMOUS_CREATED = "2026-11-28T00:00:00.000Z"


def anonymous_identity(identity_id: str) -> dict[str, Any]:
    """The identity object partners under an ``anonymise_producer`` agreement see as every producer.

    It says nothing about who produced anything, and is TLP:CLEAR so every reader can resolve it.
    """
    return {
        "type": "identity", "spec_version": "2.1", "id": identity_id,
        "created": _ANONYMOUS_CREATED, "modified": _ANONYMOUS_CREATED,
        "name": "Anonymous producer", "identity_class": "unknown",
        "description": "Stands for the producer of objects this node releases without naming their source.",
        "object_marking_refs": [TLP2_IDS[TlpLevel.CLEAR]],
    }


def agreement_from_record(record: AgreementRecord) -> Agreement:
    body = orjson.loads(record.body)
    return Agreement(
        agreement_id=record.agreement_id,
        version=record.version,
        partner=record.partner,
        producers=frozenset(body.get("producers", [ANY])),
        collections=frozenset(body.get("collections", [ANY])),
        max_tlp=TlpLevel[str(body.get("max_tlp", "GREEN")).upper().replace("+", "_")],
        releasability=frozenset(body.get("releasability", [])),
        **{flag: bool(body.get(flag, False)) for flag in _AGREEMENT_FLAGS},
        removed=body.get("removed") is True,
    )


def agreement_body(agreement: Agreement) -> dict[str, Any]:
    """The stored (and listed) form of an agreement, with sorted lists so versions compare cleanly."""
    return {
        "partner": agreement.partner,
        "producers": sorted(agreement.producers),
        "collections": sorted(agreement.collections),
        "max_tlp": agreement.max_tlp.token,
        "releasability": sorted(agreement.releasability),
        **{flag: getattr(agreement, flag) for flag in _AGREEMENT_FLAGS},
        **({"removed": True} if agreement.removed else {}),
    }


def options_from_json(text: str | None) -> PolicyOptions:
    if not text:
        return PolicyOptions()
    raw = orjson.loads(text)
    known = {f.name for f in fields(PolicyOptions)}
    values: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
    if values.get("unmarked_tlp") is not None:
        values["unmarked_tlp"] = TlpLevel.from_token(str(values["unmarked_tlp"]))
    return PolicyOptions(**values)


def options_to_json(options: PolicyOptions) -> str:
    raw = asdict(options)
    if options.unmarked_tlp is not None:
        raw["unmarked_tlp"] = options.unmarked_tlp.token
    return orjson.dumps(raw).decode()


class PolicySource:
    """Caches one PolicyContext per process; safe to share between request threads.

    The context is only read after it is built (ingest writes to the store instead), so
    threads share it; compiled viewer policies are per request and never shared.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._generation = -1
        self._context: PolicyContext | None = None
        self._aliases: dict[str, TlpLevel] = {}
        self._agreements: dict[str, Agreement] = {}

    def context(self, generation: int | None = None) -> PolicyContext:
        """The context of the policy's current generation; ``generation``: as the caller has just read it (with
        something else, in one statement), instead of reading it here."""
        if generation is None:
            generation = self._store.policy_generation()
        context = self._context
        if context is not None and generation == self._generation:
            return context
        with self._lock:
            if self._context is None or generation != self._generation:
                self._context = self._build()
                self._generation = generation
            return self._context

    def agreement(self, agreement_id: str, generation: int | None = None) -> Agreement | None:
        self.context(generation)
        return self._agreements.get(agreement_id)

    def alias_table(self) -> TlpAliasTable:
        """A fresh alias table with every alias this node has learnt (one per ingest request)."""
        self.context()
        return TlpAliasTable(self._aliases)

    def _build(self) -> PolicyContext:
        store = self._store
        shared = orjson.loads(store.get_setting(SHARED_COMMUNITIES) or "[]")
        groups = {g.organisation_id: g for g in store.list_organisation_groups()}
        organisations = []
        for org in store.list_organisations():
            found = groups.get(org.id)
            organisations.append(Organisation(
                identity_id=org.id, name=org.name, country=org.country,
                communities=frozenset(found.communities if found else ()),
                client_of=frozenset(found.client_of if found else ()),
            ))
        agreements = [agreement_from_record(r) for r in store.list_agreements()]
        latest: dict[str, Agreement] = {}
        for agreement in agreements:
            if agreement.agreement_id not in latest or latest[agreement.agreement_id].version < agreement.version:
                latest[agreement.agreement_id] = agreement
        latest = {agreement_id: a for agreement_id, a in latest.items() if not a.removed}
        self._agreements = latest
        self._aliases = {marking_id: TlpLevel(level) for marking_id, level in store.list_tlp_aliases()}
        return PolicyContext(
            marking_definitions=[_mapping(body) for body in store.list_marking_definitions()],
            organisations=organisations,
            agreements=latest.values(),
            shared_communities=shared,
            options=options_from_json(store.get_setting(POLICY_OPTIONS)),
            anonymous_identity_id=store.get_setting(ANONYMOUS_IDENTITY),
            home_organisation_id=store.get_setting("node_identity"),
        )


def _mapping(body: bytes) -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = orjson.loads(body)
    return loaded
