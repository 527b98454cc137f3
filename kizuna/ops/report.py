"""The shift hand-over report: what happened in an operation since a moment, as STIX and as Markdown.

The STIX ``report`` (in the incidents collection, under the default marking) refers to the incidents
and the objects that raised alerts, so partners receive it under the usual policy; with Japanese, a
``language-content`` object carries the translated name and description. The Markdown is for the
people taking over the shift: incidents and their status, alerts, the indicators most sighted,
what each partner sent, each partner node's sync health (core/dashboard.py, as the console's board
shows it), and activity per hour as a bar chart in text.
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.node import Node
from kizuna.core.object_view import referring
from kizuna.core.partner_health import partner_health
from kizuna.core.principal import NODE_ADMIN
from kizuna.core.vocab import DETERMINATION_NAMES, HEALTH_NAMES, RULE_NAMES, STATUS_NAMES, TYPE_NAMES
from kizuna.ops import activity
from kizuna.ops.alerts import NOT_ACTIVITY, SHIFT_REPORT_MARK
from kizuna.ops.arrivals import alerts_of, refresh
from kizuna.ops.incidents import (
    CONTACT_FOR,
    _base,
    _store,
    assigned_to,
    contacts_of,
    determination_of,
    joint_markings,
    status_of,
)
from kizuna.ops.reading import latest_objects
from kizuna.ops.records import Operation
from kizuna.ops.report_html import to_html
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.store.ops_activity import ROLE_AFTER

Translate = Callable[[str], str]
_HOUR_US = 3600 * 1_000_000
_REF_BATCH = 200  # incidents per look-up of the relationships pointing at them
_REF_LIMIT = 100_000  # relationships per look-up: far above the contact-for links of 200 incidents


def N_(message: str) -> str:  # noqa: N802 - the gettext marker: the console's catalog holds these labels
    return message


#: The report's words, English msgids translated through the console's catalog (kizuna/web/locale),
#: so the Japanese report and the console use the same terms (docs/glossary-ja.md).
LABELS = {
    "title": N_("Shift report"), "since": N_("Since"), "incidents": N_("Incidents"),
    "alerts": N_("Alerts on protected assets"), "top": N_("Most sighted indicators"),
    "partners": N_("Partner activity"), "activity": N_("Activity per hour"), "none": N_("none"),
    "status": N_("status"), "determination": N_("determination"), "assigned": N_("assigned to"),
    "objects": N_("objects"), "sightings": N_("sightings"),
    "sync": N_("Sync health"), "no_sync": N_("no partner nodes configured"), "failures": N_("failures"),
    "last_success": N_("last success"),
    # Counts after their labels, so no plural is needed in either language ("1 incidents").
    "summary": N_("Incidents: %(incidents)s, alerts: %(alerts)s, new objects: %(objects)s"),
}


@dataclass
class ShiftReport:
    stix: list[dict[str, Any]]  # the report, and its language-content when translated
    markdown: str
    html: str


def shift_report(node: Node, operation: Operation, since: int, lang: str = "en",
                 translate: Translate | None = None) -> ShiftReport:
    """The report of what was added after ``since`` (µs). ``translate`` is the catalog's gettext for
    ``lang`` (the CLI hands over the console's); English needs none."""
    if lang != "en" and translate is None:
        raise ValueError(f"a {lang} report needs the catalog's translations")
    words = {key: (translate or str)(label) for key, label in LABELS.items()}

    def say(table: dict[str, str], key: str) -> str:
        """An identifier (a status, a rule, a type) in the console's word for it, or as it is without one."""
        return (translate or str)(table[key]) if key in table else key

    names = {o.id: o.name for o in node.store.list_organisations()}
    period = period_of(node, operation, since)
    incidents, sightings, new_objects = period.incidents, period.sightings, period.objects
    # Partner activity is what the operation's partners produced: the host's own objects, other
    # organisations' and those without a producer (observables) count in the summary and per hour only.
    partners = {p.organisation_id: p.organisation for p in operation.partners}
    producers: Counter[str] = Counter()
    for producer, count in period.producers.items():
        if producer in partners:
            producers[names.get(producer, partners[producer])] += count
    per_hour = period.per_hour
    contact_links = period.contact_links
    # The report goes to every partner of the operation under its markings: an alert on an object marked
    # beyond them (a TLP:RED indicator in an AMBER report) would name that object, and count it, to them all.
    alerts = _within_markings(node, operation, alerts_of(node, operation, since))
    top = sightings.most_common(10)
    indicators = _names_of(node, operation, [ref for ref, _ in top])
    hours = {format_timestamp(hour * _HOUR_US)[:13]: count for hour, count in per_hour.items()}
    counts = {"incidents": len(incidents), "alerts": len(alerts), "objects": new_objects}
    summary = words["summary"] % counts
    # The stored report goes to every partner: it counts only what the operation's markings cover, as its alerts.
    base = operation.marking_refs
    shared = {**counts, "incidents": sum(1 for i in incidents if _within(base, i.get("object_marking_refs"))),
              "objects": period.shared_objects}
    contacts = contacts_of(contact_links, names)
    title = f"{words['title']}: {operation.name}"
    lines = [f"# {title}", "", f"{words['since']}: {format_timestamp(since)[:19]}Z", "", summary, "",
             f"## {words['incidents']}", ""]
    lines += [f"- {i['name']} — {words['status']}: {say(STATUS_NAMES, status_of(i))}, "
              + (f"{words['determination']}: {say(DETERMINATION_NAMES, d)}, " if (d := determination_of(i)) else "")
              + f"{words['assigned']}: {assigned_to(i, contacts)}" for i in incidents] or [f"- {words['none']}"]
    lines += ["", f"## {words['alerts']}", ""]
    lines += [f"- {say(RULE_NAMES, a.rule)}: {a.asset} ← {say(TYPE_NAMES, a.object_type)} "
              f"{a.object_name or a.object_id} ({a.producer or '-'})"
              for a in alerts] or [f"- {words['none']}"]
    lines += ["", f"## {words['top']}", ""]
    lines += [f"- {indicators.get(ref, ref)}: {count} {words['sightings']}"
              for ref, count in top] or [f"- {words['none']}"]
    lines += ["", f"## {words['partners']}", ""]
    lines += [f"- {who}: {count} {words['objects']}"
              for who, count in producers.most_common()] or [f"- {words['none']}"]
    lines += ["", f"## {words['sync']}", ""]
    lines += [f"- {h.name}: {say(HEALTH_NAMES, h.health)}, {words['last_success']}: {h.last_success or '-'}, "
              f"{words['failures']}: {h.consecutive_failures}"
              for h in partner_health(node)] or [f"- {words['no_sync']}"]
    lines += ["", f"## {words['activity']}", "", "```"]
    peak = max(hours.values(), default=1)
    lines += [f"{hour}:00Z {'#' * max(1, round(30 * count / peak))} {count}" for hour, count in sorted(hours.items())]
    lines += ["```", ""]

    refs = [i["id"] for i in incidents] + list(dict.fromkeys(a.object_id for a in alerts))
    report = {**_base(node, operation, "report"), "name": f"{LABELS['title']}: {operation.name}",
              "description": LABELS["summary"] % shared,
              "report_types": ["threat-report"], "object_refs": refs or [operation.grouping_id],
              SHIFT_REPORT_MARK: True}
    report["published"] = report["created"]
    stix = [report]
    if lang != "en":
        translated = {lang: {"name": title, "description": words["summary"] % shared}}
        stix.append({**_base(node, operation, "language-content"), "object_ref": report["id"],
                     "object_modified": report["modified"], "contents": translated})
        stix[-1]["id"] = f"language-content--{uuid.uuid4()}"
    _store(node, operation, stix)
    markdown = "\n".join(lines)
    return ShiftReport(stix, markdown, to_html(markdown, dict(hours), lang))


@dataclass
class Period:
    """What the operation's collections received after a moment (newest versions, as the administrator
    reads them), other than definitions and the operation's own shift reports."""

    objects: int = 0
    #: of ``objects``, those whose markings the operation's own cover (``_within``): what a partner may be told
    shared_objects: int = 0
    per_hour: Counter[int] = field(default_factory=Counter)
    producers: dict[str | None, int] = field(default_factory=dict)  # created_by_ref -> count, first seen first
    incidents: list[dict[str, Any]] = field(default_factory=list)
    sightings: Counter[str] = field(default_factory=Counter)  # the most sighted indicators (``top`` of them)
    contact_links: list[dict[str, Any]] = field(default_factory=list)


def period_of(node: Node, operation: Operation, since: int, top: int | None = 10) -> Period:
    """The period's counts: what the collections received grouped from the stored columns (an indexed
    range, newest versions only), the operation's own shift reports taken back out; the sightings' counts
    of the whole minutes after ``since`` from the sums kept as they arrived (ops/activity.py), those of
    ``since``'s own minute read; its incidents read by type; the ``contact-for`` relationships of its
    incidents by reference. ``sightings`` keeps the ``top`` most sighted indicators (all with None)."""
    refresh(node, operation)
    found = Period()
    first_seen: dict[str | None, tuple[int, int]] = {}
    sighted: dict[str, list[int]] = {}  # indicator -> [count, order key]
    slot = activity.SLOT_US
    boundary = (since // slot + 1) * slot  # the first whole slot of the kept sums

    within: dict[str | None, bool] = {}

    def count(order: int, hour: int, producer: str | None, number: int, first: int, markings: str | None) -> None:
        found.objects += number
        shared = within.get(markings)
        if shared is None:
            shared = within[markings] = _within(operation.marking_refs, orjson.loads(markings) if markings else None)
        found.shared_objects += number if shared else 0
        found.per_hour[hour] += number
        found.producers[producer] = found.producers.get(producer, 0) + number
        first_seen[producer] = min(first_seen.get(producer, (order, first)), (order, first))

    collections = [node.find_collection(operation.collections[role]) for role in ("intel", "incidents")]
    for order, collection in enumerate(collections):
        for hour, producer, kind, number, first, markings in node.store.added_counts(collection.pk, since):
            if kind not in NOT_ACTIVITY:
                count(order, hour, producer, number, first, markings)
        for added, obj in latest_objects(node, collection, ("report",), added_after=since):
            if obj.get(SHIFT_REPORT_MARK):  # counted by the grouping above: taken back out
                marked = obj.get("object_marking_refs")
                count(order, added // _HOUR_US, obj.get("created_by_ref"), -1, added,
                      orjson.dumps(marked).decode() if marked else None)
        for added, obj in latest_objects(node, collection, ("sighting",), added_after=since):
            if added >= boundary:
                break
            if not obj.get(SHIFT_REPORT_MARK):
                entry = sighted.setdefault(obj.get("sighting_of_ref", ""), [0, order * ROLE_AFTER + added])
                entry[0] += int(obj.get("count", 1))
    for ref, (number, key) in node.store.ops_sighted(operation.slug, boundary // slot).items():
        entry = sighted.setdefault(ref, [0, key])
        entry[0] += number
        entry[1] = min(entry[1], key)
    ranked = sorted(sighted.items(), key=lambda item: (-item[1][0], item[1][1])) if top is None else \
        heapq.nsmallest(top, sighted.items(), key=lambda item: (-item[1][0], item[1][1]))
    found.sightings = Counter(dict((ref, entry[0]) for ref, entry in ranked[:top]))
    for collection in collections:
        found.incidents.extend(obj for _, obj in latest_objects(node, collection, ("incident",), added_after=since))
    found.per_hour = +found.per_hour  # hours that only held shift reports are not activity
    # In order of first arrival, so equal counts keep the order a reading of the objects would give.
    found.producers = {p: found.producers[p] for p in sorted(found.producers, key=first_seen.__getitem__)
                       if found.producers[p] > 0}
    incident_ids = [i["id"] for i in found.incidents]
    for role in ("intel", "incidents") if incident_ids else ():
        viewer = node.viewer_for(NODE_ADMIN, node.find_collection(operation.collections[role]))
        for start in range(0, len(incident_ids), _REF_BATCH):
            related, _ = referring(node, viewer, incident_ids[start:start + _REF_BATCH], ("relationship",),
                                   _REF_LIMIT)
            found.contact_links.extend(obj for _, obj in related if obj.get("relationship_type") == CONTACT_FOR)
    return found


def _names_of(node: Node, operation: Operation, ids: list[str]) -> dict[str, str]:
    """The shown names of a few objects (the most sighted indicators), read by id."""
    found: dict[str, str] = {}
    for role in ("intel", "incidents") if ids else ():
        collection = node.find_collection(operation.collections[role])
        for _, obj in latest_objects(node, collection, ids=tuple(ids)):
            found[obj["id"]] = obj.get("name") or obj.get("pattern", obj["id"])
    return found


def default_since() -> int:
    return now_micros() - 12 * 3600 * 1_000_000


def _within(base: list[str], markings: list[str] | None) -> bool:
    """Whether an object with these markings carries none beyond the operation's own (``joint_markings`` adds
    none). A stored markings column lists granular markings too: stricter, never looser."""
    return set(joint_markings(base, {"object_marking_refs": markings or []})) == set(base)


def _within_markings(node: Node, operation: Operation, alerts: list[Any]) -> list[Any]:
    """The alerts whose objects carry no marking beyond the operation's own (``joint_markings`` adds none)."""
    wanted = tuple(dict.fromkeys(a.object_id for a in alerts))
    if not wanted:
        return alerts
    within: set[str] = set()
    for collection_id in operation.collections.values():
        for _, obj in latest_objects(node, node.find_collection(collection_id), ids=wanted):
            if _within(operation.marking_refs, obj.get("object_marking_refs")):
                within.add(obj["id"])
    return [a for a in alerts if a.object_id in within]
