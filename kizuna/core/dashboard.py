"""The numbers behind the console's dashboard, for one principal (issue 11).

* **received**: object versions added per UTC day, by producer organisation and by TLP. Grouped in
  the store (store/stats.py) by the columns the visibility check decides from, and each group decided
  once by ``visibility.group_verdict`` (AMBER+STRICT/RED groups a partner could see also lose the
  versions a partner node sent, which stop here); versions that need their body (relationships, sightings,
  reports, identities…, and versions with granular markings) go through ``visibility.view`` one by one,
  newest first, at most ``PER_ROW_LIMIT`` of each per collection — beyond that the answer says ``partial``.
  Each version is counted under the TLP of its object's own markings: a granular marking governs only the
  part it selects, which a reader who may not see it does not receive.
* **received_from_partners**: versions per day each partner node sent (provenance), for the node's
  own organisation.
* **shared**: what left the node, read from the ``egress`` records of the audit log (every page any
  principal was served, and every push read for a partner node), counted for the organisations other
  than the node's own. A push counts what it posted to the partner, refusals by the partner included;
  versions the sync held back (echo, AMBER+STRICT/RED of other producers) and posts that failed are not.
* **reports / indicators**: the newest the principal may see, through ``view``; a report's name in the
  other languages that a ``language-content`` object for that version gives (read through ``view`` too).
* **sightings**: the newest sightings, made by other organisations, of indicators the node's own
  organisation produced (same collection), through ``view``.
* **sync**: per partner node, its stored sync state and push backlog; only for the node's operator and
  its own organisation, because it describes the node's configuration, not objects.

A principal that is not the node's own organisation gets only numbers about what it may see: counts
pass the visibility check, it sees "shared" only for its own organisation, and no federation details.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import orjson

from kizuna.core.audit import object_tlp_label, pack_served, tlp_counts, tlp_label
from kizuna.core.browse import identity_object_names
from kizuna.core.node import Node
from kizuna.core.partner_health import PartnerHealth, partner_health
from kizuna.core.principal import Principal
from kizuna.core.visibility import Viewer, group_verdict, stops_onward, view
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.store.base import Collection, VersionRow
from kizuna.store.stats import DAY_MICROS, FURNITURE, StoreStats
from kizuna.store.view_edges import GRANULAR, UNDECIDED_TYPES

#: Versions decided one by one (``view``) per collection for the received counts.
PER_ROW_LIMIT: Final = 1000
#: Rows looked at per collection and per wanted item to find the newest visible reports, indicators and
#: sightings (a partner that may see few of them gets fewer, not a slower board).
NEWEST_SCAN: Final = 20
#: language-content versions read per listed report (its translations, in every language and version).
TRANSLATIONS_SCAN: Final = 100
PER_ROW_TYPES: Final = tuple(sorted(UNDECIDED_TYPES - set(FURNITURE)))
#: Groups without a per-row type are decided alike whatever their type; the stub needs one.
_PLAIN_TYPE: Final = "indicator"
_SHARED_ENDPOINTS: Final = frozenset({"objects", "object", "dashboard"})


@dataclass(frozen=True, slots=True)
class DayCount:
    day: str  # YYYY-MM-DD, UTC
    partner: str
    tlp: str
    objects: int


@dataclass(frozen=True, slots=True)
class PartnerDay:
    day: str
    partner: str  # the partner node entry
    objects: int


@dataclass(frozen=True, slots=True)
class Item:
    collection: str
    date_added: str
    object: dict[str, Any]  # as the principal may see it (redacted where the policy says so)
    #: Its name by language, from the language-content objects the principal may see (for reports).
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class Dashboard:
    since: str
    days: int
    received: list[DayCount]
    #: Versions per day that partner nodes sent (by federation entry); the node's own organisation only.
    received_from_partners: list[PartnerDay]
    shared: list[DayCount]
    reports: list[Item]
    indicators: list[Item]
    sightings: list[Item]
    sync: list[PartnerHealth]
    #: Some versions that are decided one by one were beyond ``PER_ROW_LIMIT`` and are not counted.
    partial: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_dashboard(node: Node, principal: Principal, days: int = 14, newest: int = 10) -> Dashboard:
    now = now_micros()
    since = (now // DAY_MICROS - days + 1) * DAY_MICROS
    stats = StoreStats(node.store)
    names = {org.id: org.name for org in node.store.list_organisations()}
    is_home = principal.is_admin or (
        principal.organisation_id is not None and principal.organisation_id == node.home_organisation_id
    )
    viewers = [node.viewer_for(principal, c) for c in node.store.list_collections() if principal.can_read(c)]
    received: Counter[tuple[int, str, str]] = Counter()
    partial = False
    for viewer in viewers:
        partial |= _count_received(node, stats, viewer, since, names, received)
    served: dict[str, list[VersionRow]] = {}
    reports = _translated(stats, viewers, _newest(stats, viewers, "report", newest, served), served)
    indicators = _newest(stats, viewers, "indicator", newest, served)
    sightings = _our_sightings(node, stats, viewers, newest, served)
    for viewer in viewers:
        rows = served.get(viewer.collection.id)
        if rows:
            _record_egress(node, viewer, rows)
    return Dashboard(
        since=format_timestamp(since), days=days,
        received=_day_counts(received),
        received_from_partners=[PartnerDay(_day(day), partner, n) for day, partner, n in
                                sorted(stats.received_from_partners(since))] if is_home else [],
        shared=_shared(node, stats, principal, since, names, is_home),
        reports=reports, indicators=indicators, sightings=sightings,
        sync=partner_health(node, stats, names) if is_home and principal.agreement_id is None else [],
        partial=partial,
    )


def warm_counts(node: Node, days: int = 14) -> None:
    """Bring every collection's received counts (store/received_groups.py) into this process and up to date,
    as the first dashboard would: a serving process does it as it starts, beside the requests."""
    now = now_micros()
    since = (now // DAY_MICROS - days + 1) * DAY_MICROS
    stats = StoreStats(node.store)
    for collection in node.store.list_collections():
        stats.received_groups(collection.pk, since, PER_ROW_TYPES)


def _day(day: int) -> str:
    return datetime.datetime.fromtimestamp(day * 86400, datetime.UTC).date().isoformat()


def _day_counts(counts: Counter[tuple[int, str, str]]) -> list[DayCount]:
    return [DayCount(_day(day), partner, tlp, n) for (day, partner, tlp), n in sorted(counts.items()) if n]


def _producer_name(producer: str | None, names: dict[str, str], anonymised: bool) -> str:
    if anonymised:
        return "anonymous producer"
    if producer is None:
        return "no producer"
    return names.get(producer, "unknown producer")


def _identity_names(node: Node, viewer: Viewer, refs: set[str | None], names: dict[str, str]) -> dict[str, str]:
    """``names`` (the node's organisations) and the names of the identity objects of the viewer's collection
    that ``refs`` points at, read through the same check as any read: a producer such as ATT&CK's, known
    only by the identity object it ships, is named as `kizuna objects list` names it."""
    wanted = sorted(ref for ref in refs if ref and ref.startswith("identity--") and ref not in names)
    return {**names, **identity_object_names(node, viewer, wanted)} if wanted else names


def _count_received(
    node: Node, stats: StoreStats, viewer: Viewer, since: int, names: dict[str, str],
    into: Counter[tuple[int, str, str]],
) -> bool:
    """Add the collection's visible received versions to ``into``; True if some were left uncounted."""
    per_row = 0
    collection_pk = viewer.collection.pk
    groups = list(stats.received_groups(collection_pk, since, PER_ROW_TYPES))
    names = _identity_names(node, viewer, {group.created_by_ref for group in groups}, names)
    senders: list[str] | None = None  # the reader's own partner entries: what they sent is not stopped for it
    granular: list[int] = []  # the seq of each version with granular markings
    for group in groups:
        seq = group.granular_seq
        if seq is not None:
            granular.append(seq)
            continue
        if group.type:
            per_row += group.versions
            if viewer.policy is not None:
                continue  # decided one by one below
            verdict: tuple[bool, bool] | None = (True, False)
        else:
            verdict = group_verdict(viewer, _PLAIN_TYPE, group.created_by_ref, group.markings, relayed=False)
        if verdict is None or not verdict[0]:
            continue
        count = group.versions
        if viewer.policy is not None and group.markings is not None and stops_onward(
            group.markings, viewer.policy.relay_floor
        ) and not (
            group_verdict(viewer, _PLAIN_TYPE, group.created_by_ref, group.markings, relayed=True) or (False,)
        )[0]:
            # AMBER+STRICT/RED received from a partner node stop here, and AMBER at the node's organisation's
            # clients: not counted for anyone else.
            if senders is None:
                org_id = viewer.principal.organisation_id
                senders = node.partner_entries_of(org_id) if org_id else []
            count -= stats.relayed_count(collection_pk, since, group.created_by_ref, group.markings, PER_ROW_TYPES,
                                         senders)
        source = _producer_name(group.created_by_ref, names, verdict[1])
        into[(group.day, source, tlp_label(group.markings))] += count
    # Versions with granular markings, newest first, and those of the per-row types: one by one, as the reader
    # receives them.
    granular.sort(reverse=True)
    rows = stats.store.versions_by_seq(granular[:PER_ROW_LIMIT]) if granular else []
    partial = len(granular) > PER_ROW_LIMIT
    if viewer.policy is not None and per_row:
        # Those with granular markings are among the versions above, counted there.
        per_row_rows = [row for row in stats.newest_of_types(collection_pk, PER_ROW_TYPES, since, PER_ROW_LIMIT)
                        if row.markings is None or GRANULAR not in row.body]
        partial |= per_row > len(per_row_rows)
        rows += per_row_rows
    if not rows:
        return partial
    names = _identity_names(node, viewer, {row.created_by_ref for row in rows}, names)
    viewer.prefetch(rows)  # what the relationships, sightings and reports point at, in a few queries
    for row in rows:
        body = view(viewer, row)
        if body is None:
            continue
        producer = orjson.loads(body).get("created_by_ref") if row.created_by_ref else None
        source = _producer_name(row.created_by_ref, names, producer != row.created_by_ref)
        # Under the TLP of the object's own markings: a granular marking governs only the part it selects.
        into[(row.date_added // DAY_MICROS, source, object_tlp_label(row))] += 1
    viewer.hidden.clear()  # counting is not serving: nothing here goes into an egress record
    viewer.redacted.clear()
    return partial


def _newest(
    stats: StoreStats, viewers: list[Viewer], stix_type: str, limit: int, served: dict[str, list[VersionRow]],
) -> list[Item]:
    """The ``limit`` most recently added objects of a type the principal may see, newest first."""
    found: list[tuple[VersionRow, Collection, bytes]] = []
    for viewer in viewers:
        seen: set[str] = set()
        rows = stats.newest_of_types(viewer.collection.pk, (stix_type,), 0, NEWEST_SCAN * limit)
        viewer.prefetch(rows)
        for row in rows:
            if row.stix_id in seen:
                continue
            body = view(viewer, row)
            if body is not None:
                seen.add(row.stix_id)
                found.append((row, viewer.collection, body))
                if len(seen) >= limit:
                    break
    found.sort(key=lambda item: item[0].date_added, reverse=True)
    return [_item(row, collection, body, served) for row, collection, body in found[:limit]]


def _item(row: VersionRow, collection: Collection, body: bytes, served: dict[str, list[VersionRow]]) -> Item:
    served.setdefault(collection.id, []).append(row)
    return Item(collection.id, format_timestamp(row.date_added), orjson.loads(body))


def _translated(
    stats: StoreStats, viewers: list[Viewer], items: list[Item], served: dict[str, list[VersionRow]],
) -> list[Item]:
    """``items`` with their names in the languages that language-content objects for their versions give, found
    by their ``object_ref`` in the reference index (store/object_refs.py): up to ``TRANSLATIONS_SCAN`` per item,
    oldest first, so a newer one gives the name when two do."""
    names: dict[str, dict[str, str]] = {}
    for viewer in viewers:
        versions = {i.object["id"]: i.object.get("modified") for i in items if i.collection == viewer.collection.id}
        if not versions:
            continue
        rows = stats.store.referencing(viewer.collection.pk, list(versions), ("language-content",),
                                       TRANSLATIONS_SCAN * len(versions))
        viewer.prefetch(rows)
        for row in rows:
            body = view(viewer, row)
            obj = orjson.loads(body) if body is not None else {}
            target, contents = obj.get("object_ref"), obj.get("contents")
            if (not isinstance(target, str) or target not in versions or not isinstance(contents, dict)
                    or obj.get("object_modified", versions[target]) != versions[target]):
                continue  # hidden, or for another version of the report
            served.setdefault(viewer.collection.id, []).append(row)
            for language, properties in contents.items():
                if isinstance(properties, dict) and isinstance(properties.get("name"), str):
                    names.setdefault(target, {})[str(language)] = properties["name"]
    return [replace(item, names=names[item.object["id"]]) if item.object["id"] in names else item for item in items]


def _our_sightings(
    node: Node, stats: StoreStats, viewers: list[Viewer], limit: int, served: dict[str, list[VersionRow]],
) -> list[Item]:
    """Sightings by other organisations of indicators the node's own organisation produced."""
    home = node.home_organisation_id
    found: list[tuple[VersionRow, Collection, bytes]] = []
    for viewer in viewers:
        rows = stats.newest_of_types(viewer.collection.pk, ("sighting",), 0, NEWEST_SCAN * limit)
        candidates = []
        for row in rows:
            if row.created_by_ref == home:
                continue
            target = orjson.loads(row.body).get("sighting_of_ref")
            if isinstance(target, str) and target.startswith("indicator--"):
                candidates.append((row, target))
        ours = stats.produced_by(viewer.collection.pk, {target for _, target in candidates}, home)
        viewer.prefetch([row for row, target in candidates if target in ours])
        kept = 0
        for row, target in candidates:
            if target in ours and kept < limit:
                body = view(viewer, row)
                if body is not None:
                    found.append((row, viewer.collection, body))
                    kept += 1
    found.sort(key=lambda item: item[0].date_added, reverse=True)
    return [_item(row, collection, body, served) for row, collection, body in found[:limit]]


def _record_egress(node: Node, viewer: Viewer, rows: list[VersionRow]) -> None:
    """What the dashboard showed of one collection goes into the audit log like any page served."""
    body: dict[str, Any] = {
        "collection": viewer.collection.id, "endpoint": "dashboard", "tlp": tlp_counts(rows),
        "served": pack_served([r.stix_id for r in rows], [r.version for r in rows]),
    }
    if viewer.hidden:
        body["hidden"] = dict(viewer.hidden)
    if viewer.redacted:
        body["redacted"] = dict(viewer.redacted)
    node.audit.record("egress", viewer.principal.key, body)


def _shared(
    node: Node, stats: StoreStats, principal: Principal, since: int, names: dict[str, str], is_home: bool,
) -> list[DayCount]:
    """Versions served to other organisations per day, recipient and TLP, from the egress records."""
    organisation_of: dict[str, str | None] = dict(stats.token_organisations())
    for name, config in node.store.partner_configs():
        try:
            organisation_of[f"partner:{name}"] = orjson.loads(config).get("organisation")
        except orjson.JSONDecodeError:
            continue
    counts: Counter[tuple[int, str, str]] = Counter()
    for record in stats.egress_since(since):
        org = organisation_of.get(record.principal or "")
        if org is None or org == node.home_organisation_id or not (is_home or org == principal.organisation_id):
            continue
        if record.endpoint not in _SHARED_ENDPOINTS or not record.delivered:
            continue
        by_tlp = record.tlp if record.tlp else {"unknown": record.served}
        for tlp, n in by_tlp.items():
            counts[(record.at // DAY_MICROS, names.get(org, org), str(tlp))] += int(n)
    return _day_counts(counts)
