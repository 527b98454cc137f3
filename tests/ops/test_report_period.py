"""The shift report reads its period, not the operation's history: its counts come from SQL aggregates
and its alerts from the stored ones. Here both are checked against judging and counting every stored
object of the operation, as the report did before, on the same data."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from kizuna.core.node import Node
from kizuna.ops.alerts import NOT_ACTIVITY, SHIFT_REPORT_MARK, judge_stored
from kizuna.ops.arrivals import alerts_of
from kizuna.ops.incidents import CONTACT_FOR, add_incident, update_incident
from kizuna.ops.reading import latest_objects, stix_now
from kizuna.ops.records import Operation
from kizuna.ops.report import Period, _within, period_of, shift_report
from kizuna.stix.timestamps import now_micros
from tests.ops.conftest import RED, indicator, sighting

_HOUR_US = 3600 * 1_000_000


def every_object(node: Node, operation: Operation, since: int) -> Period:
    """The period as a reading of every object of the operation finds it (the former report's loop)."""
    found = Period()
    producers: Counter[str | None] = Counter()
    for role in ("intel", "incidents"):
        for added, obj in latest_objects(node, node.find_collection(operation.collections[role])):
            if obj["type"] in NOT_ACTIVITY or obj.get(SHIFT_REPORT_MARK):
                continue
            if obj["type"] == "relationship" and obj.get("relationship_type") == CONTACT_FOR:
                found.contact_links.append(obj)
            if added <= since:
                continue
            found.objects += 1
            # As the stored markings column has them: the object's markings and its granular ones.
            marked = [*obj.get("object_marking_refs", ()), *(g["marking_ref"] for g in obj.get("granular_markings", ())
                                                              if "marking_ref" in g)]
            found.shared_objects += _within(operation.marking_refs, marked)
            found.per_hour[added // _HOUR_US] += 1
            producers[obj.get("created_by_ref")] += 1
            if obj["type"] == "incident":
                found.incidents.append(obj)
            elif obj["type"] == "sighting":
                found.sightings[obj.get("sighting_of_ref", "")] += int(obj.get("count", 1))
    found.producers = dict(producers)
    return found


def same(left: Period, right: Period) -> None:
    assert (left.objects, left.shared_objects, dict(left.per_hour)) == (
        right.objects, right.shared_objects, dict(right.per_hour))
    assert list(left.producers.items()) == list(right.producers.items())  # order decides equal counts' order
    assert [i["id"] for i in left.incidents] == [i["id"] for i in right.incidents]
    assert left.sightings.most_common() == right.sightings.most_common()
    newest = {o["target_ref"]: o["source_ref"] for o in sorted(left.contact_links, key=lambda o: o["created"])
              if not o.get("revoked") and o["target_ref"] in {i["id"] for i in left.incidents}}
    assert newest == {o["target_ref"]: o["source_ref"] for o in sorted(right.contact_links, key=lambda o: o["created"])
                      if not o.get("revoked")}


def test_the_period_and_its_alerts_equal_a_reading_of_every_object(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    soc = next(o.id for o in node.store.list_organisations() if o.name == "Games SOC")
    home = node.store.get_setting("node_identity")
    old = [indicator("old.games2027.example", created_by_ref=soc), indicator("quiet.example")]
    node.import_objects(intel, old + [sighting(old[0]["id"])])
    kept = add_incident(node, operation, "Before the shift", assign="Games SOC")
    since = now_micros()

    new: list[dict[str, Any]] = []
    for n in range(30):
        producer = (soc, home, None)[n % 3]
        value = "login.games2027.example" if n % 4 == 0 else f"host{n}.unrelated.example"
        new.append(indicator(value, **({"created_by_ref": producer} if producer else {})))
    new += [sighting(new[0]["id"], created_by_ref=soc), sighting(old[0]["id"]), sighting(new[5]["id"])]
    # Marked beyond the operation's AMBER: counted for the operator, not in the report every partner receives.
    new += [indicator("red.games2027.example", RED), indicator("red2.unrelated.example", RED, created_by_ref=soc)]
    now = stix_now()
    new.append({"type": "relationship", "spec_version": "2.1", "id": f"relationship--{uuid.uuid4()}",
                "created": now, "modified": now, "relationship_type": "related-to",
                "source_ref": new[4]["id"], "target_ref": old[1]["id"]})
    node.import_objects(intel, new[:17])
    node.import_objects(intel, new[17:])
    fresh = add_incident(node, operation, "Phishing wave", assign="Games SOC")
    update_incident(node, operation, fresh["id"], "investigating", "Host CERT")
    update_incident(node, operation, kept["id"], "closed", None)
    shift_report(node, operation, since)  # the operation's own report: neither activity nor news

    period = period_of(node, operation, since)
    same(period, every_object(node, operation, since))
    assert period.objects - period.shared_objects == 2
    assert alerts_of(node, operation, since) == judge_stored(node, operation, since)
    assert {a.object_id for a in alerts_of(node, operation, since)} >= {new[0]["id"], new[30]["id"]}
    report = shift_report(node, operation, since)
    markdown = report.markdown
    # The operator's Markdown counts everything; the stored report, which every partner receives, what its
    # markings cover (a TLP:RED object is neither named nor counted to them).
    assert f"new objects: {period.objects}" in markdown
    assert report.stix[0]["description"].endswith(f"new objects: {period.shared_objects}")
    assert "Phishing wave — status: investigating" in markdown and "assigned to: Host CERT" in markdown
    assert "Before the shift" in markdown  # a new version of an older incident is news of the period
