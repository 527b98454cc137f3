"""Each partner of the node as its operator reads it: kind, address, sync state, backlog, last error, health.

Read from the stored federation tables through ``store/stats.py`` (core may not import
``kizuna.federation``, a room above it): the partner's stored configuration, its status row and the
lease of a run in progress. The dashboard's sync table and the console's Partners page both show this,
and it matches ``kizuna partners list`` field for field (same rows, same status). The callers show it to
the node's own operators only. The push backlog counts what the partner's agreement lets it read, through
the one visibility check, as the partner itself (as a push reads for it), less what the push never sends back
or onward (``policy/onward.py``) and the sightings that flow back instead (``core/flow_back.py``); from the
start when what the partner may see changed since its last push, as the push then offers every version again.
What is counted is not served.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kizuna.core.filters import Filters
from kizuna.core.flow_back import FlowBackRule
from kizuna.core.listing import Budget, Walk, scan
from kizuna.core.node import Node
from kizuna.core.principal import partner_reader
from kizuna.core.visibility import Viewer
from kizuna.policy.onward import may_send, same_node
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.store.base import Collection, VersionSelector
from kizuna.store.stats import FURNITURE, StoreStats

#: A push backlog is counted exactly up to this many versions.
BACKLOG_CAP: Final = 10_000
#: Stored versions after a push mark read through the partner's view, per pushed collection, to count its
#: backlog (each costs a visibility decision); past them the count is a floor and says so.
BACKLOG_READ: Final = 10_000
_ALL_VERSIONS: Final = VersionSelector(all=True)
#: The sync worker's run lease names (federation/state.py ``RUN_LEASE_PREFIX``; core may not import it).
RUN_LEASE_PREFIX: Final = "run:"
#: Health, worst first: what the Partners page sorts and colours by.
HEALTH_ORDER: Final = ("unusable", "failing", "interrupted", "never", "syncing", "healthy")


@dataclass(frozen=True, slots=True)
class PartnerHealth:
    name: str
    organisation: str | None
    state: str
    consecutive_failures: int
    last_attempt: str | None
    last_success: str | None
    last_error: str | None
    pulled: int
    pushed: int
    quarantined: int
    #: Versions added to pushed collections since the last push (every version, when its terms changed since)
    #: that a push would send: what the partner's agreement lets it read, less what the push's own rules hold
    #: back (no echo, no relay of AMBER+STRICT/RED) and the sightings that flow back in their own stream;
    #: exact up to ``BACKLOG_CAP`` and among the first ``BACKLOG_READ`` stored; past either ``push_backlog_more``.
    push_backlog: int | None
    push_backlog_more: bool
    notes: list[str] = field(default_factory=list)
    kind: str = "taxii"  # or "misp-feed"
    url: str | None = None  # without any user:password part
    next_attempt: str | None = None
    #: One word for the operator, see :func:`health_of`.
    health: str = "never"


def health_of(state: str, failures: int, last_success: int | None, usable: bool) -> str:
    """``unusable`` (the stored configuration cannot be read), ``failing`` (the last attempts failed),
    ``interrupted`` (a run died without an outcome), ``syncing`` (a run is alive), ``never`` (no run has
    succeeded yet) or ``healthy``."""
    if not usable:
        return "unusable"
    if failures:
        return "failing"
    if state in ("interrupted", "running"):
        return "interrupted" if state == "interrupted" else "syncing"
    return "healthy" if last_success else "never"


def without_credentials(url: str) -> str:
    """A URL as a listing may show it: a ``user:password@`` part is dropped."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def partner_health(node: Node, stats: StoreStats | None = None, names: dict[str, str] | None = None,
                   ) -> list[PartnerHealth]:
    """Every partner entry, by name, with its status and push backlog."""
    stats = stats or StoreStats(node.store)
    names = names if names is not None else {org.id: org.name for org in node.store.list_organisations()}
    now = now_micros()
    positions = {(partner, local): at for partner, local, at in stats.push_positions()}
    terms = stats.push_terms()
    collections = node.store.list_collections()
    rows = stats.sync_rows(RUN_LEASE_PREFIX)
    configs = {name: _config(text) for name, text, _, _ in rows}
    own = frozenset(filter(None, [node.identity().get("id")]))
    roots = {name: (config or {}).get("api_root_url") for name, config in configs.items()}
    found = []
    for name, _, status, lease_expires in rows:
        usable = configs[name] is not None
        config = configs[name] or {}
        state = status.state
        if state == "running" and (lease_expires is None or lease_expires < now):
            state = "interrupted"  # the run's process died without recording an outcome
        backlog: int | None = None
        more = False
        for mapping in config.get("mappings", ()):
            if mapping.get("direction") in ("push", "both"):
                collection = next((c for c in collections if mapping.get("local") in (c.id, c.alias)), None)
                if collection is not None:
                    organisation = config.get("organisation")
                    position = positions.get((name, collection.id))
                    agreed = terms.get((name, collection.id))
                    viewer = None  # the partner's view is compiled only when a question needs it
                    if agreed is not None:
                        viewer = _partner_view(node, name, config, collection)
                        if agreed != (viewer.policy.terms() if viewer.policy else ""):
                            position = None  # what it may see changed: the next push offers every version again
                    waiting, beyond = 0, False
                    if stats.waiting_after(collection.pk, position, 0):  # something waits: what may go?
                        viewer = viewer or _partner_view(node, name, config, collection)
                        waiting, beyond = _sendable(node, viewer, organisation, collection, position,
                                                    same_node(name, roots), own, _flows_back(node, config))
                    backlog = (backlog or 0) + waiting
                    more = more or beyond
        last_run = orjson.loads(status.last_run) if status.last_run else {}
        org = config.get("organisation")
        url = config.get("api_root_url")
        found.append(PartnerHealth(
            name, names.get(org, org) if org else None, state, status.failures,
            format_timestamp(status.last_attempt) if status.last_attempt else None,
            format_timestamp(status.last_success) if status.last_success else None, status.last_error,
            status.pulled, status.pushed, status.quarantined,
            None if backlog is None else min(backlog, BACKLOG_CAP),
            backlog is not None and (more or backlog > BACKLOG_CAP),
            list(last_run.get("notes", [])) if isinstance(last_run, dict) else [],
            kind=str(config.get("kind", "taxii")), url=without_credentials(url) if isinstance(url, str) else None,
            next_attempt=format_timestamp(status.next_attempt) if status.next_attempt else None,
            health=health_of(state, status.failures, status.last_success, usable),
        ))
    return found


def _config(text: str) -> dict[str, Any] | None:
    """A partner's stored configuration, or None when it cannot be read."""
    try:
        config = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return config if isinstance(config, dict) else None


def _partner_view(node: Node, name: str, config: dict[str, Any], collection: Collection) -> Viewer:
    """The partner node as a push reads for it: its organisation under its agreement."""
    reader = partner_reader(name, config.get("organisation"), config.get("agreement"), [collection.pk])
    return node.viewer_for(reader, collection)


def _flows_back(node: Node, config: dict[str, Any]) -> bool:
    """Whether the partner's agreement sends sightings of its own objects back in the flow-back stream."""
    name = config.get("agreement")
    agreement = node.policy.agreement(name) if isinstance(name, str) and name else None
    return agreement is not None and agreement.sightings_flow_back


def _sendable(node: Node, viewer: Viewer, organisation: str | None, collection: Collection, after: int | None,
              same_node: frozenset[str], own: frozenset[str], flows_back: bool) -> tuple[int, bool]:
    """The content versions added after ``after`` that a push would send to ``viewer``'s node, and whether more
    were left unread (past ``BACKLOG_READ`` stored versions): the console's window walk, every version as a push
    reads them, then the push's own rules (``policy/onward.py``: no echo, no relay of AMBER+STRICT/RED) and,
    with ``flows_back``, without the sightings that travel in the flow-back stream instead (``core/flow_back.py``)."""
    walk = Walk()
    visible = scan(node, viewer, Filters(versions=_ALL_VERSIONS, added_after=after),
                   Budget(floor=BACKLOG_READ, seconds=0.0), walk)  # those rows, no time beyond them
    content = [row for row, _ in visible if row.type not in FURNITURE]  # definitions travel with their objects
    if flows_back:
        rule = FlowBackRule(node.store, collection.pk, same_node, organisation)
        flowing = {(row.stix_id, row.version) for row, _ in rule.select(content)}
        content = [row for row in content if (row.stix_id, row.version) not in flowing]
    senders = (node.store.partners_of(collection.pk, [(row.stix_id, row.version) for row in content])
               if content and node.store.holds_provenance(collection.pk) else {})
    rules: dict[tuple[str | None, str | None, str | None], bool] = {}  # the few distinct columns, decided once
    counted = 0
    for row in content:
        key = (row.markings, row.created_by_ref, senders.get((row.stix_id, row.version)))
        sent = rules.get(key)
        if sent is None:
            sent = rules[key] = may_send(same_node, *key, own)
        counted += sent
    return counted, not walk.complete
