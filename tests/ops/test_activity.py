"""The shift report's period (its counts grouped from the stored columns, its sightings' sums kept as
they arrive: ops/activity.py, schema steps 19 and 21) against counting every stored object: after
ingests the listener missed, new versions (also one arriving after a newer one), deletions and a changed
watchlist, for every start of the period, and the sums equal to sums rebuilt from nothing. An "hour" of
four microseconds puts each few consecutive objects in a bucket of their own (of two two-microsecond
slots of the sums), so every period mixes the first, partly covered slot with whole ones."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import kizuna.ops.activity
import kizuna.ops.report
import kizuna.store.ops_alerts
from kizuna.core.filters import Filters
from kizuna.core.ingest import prepare
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.ops.arrivals import STATE_KEY, alerts_of, refresh, watch_arrivals
from kizuna.ops.assets import add_assets
from kizuna.ops.reading import latest_objects, next_modified
from kizuna.ops.records import Operation
from kizuna.ops.report import period_of
from kizuna.store.base import NewVersion, VersionSelector
from tests.ops import test_report_period
from tests.ops.conftest import indicator, sighting
from tests.ops.test_report_period import every_object, same

_HOUR, _SLOT = 4, 2


def sums(node: Node, operation: Operation) -> list[tuple[str, int]]:
    """The stored sightings' sums as counts, read without catching up."""
    return sorted((ref, number) for ref, (number, _) in node.store.ops_sighted(operation.slug, 0).items())


def check(node: Node, operation: Operation) -> None:
    """Every period, from before the first object to after the last, equals a counting of every object;
    the kept sums equal sums rebuilt from the stored objects."""
    refresh(node, operation)
    kept = sums(node, operation)
    stamps = sorted(added for role in ("intel", "incidents")
                    for added, _ in latest_objects(node, node.find_collection(operation.collections[role])))
    for since in [0, *(stamp - shift for n, stamp in enumerate(stamps[::3]) for shift in (n % 2, 2))]:
        same(period_of(node, operation, since, top=None), every_object(node, operation, since))
    node.store.set_setting(STATE_KEY + operation.slug, "")  # forget the cache: rebuilt on the next read
    refresh(node, operation)
    assert sums(node, operation) == kept


def version(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**obj, "modified": next_modified(obj["modified"]), **changes}


@pytest.fixture(autouse=True)
def short_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kizuna.ops.activity, "SLOT_US", _SLOT)
    monkeypatch.setattr(test_report_period, "_HOUR_US", _HOUR)
    monkeypatch.setattr(kizuna.ops.report, "_HOUR_US", _HOUR)
    monkeypatch.setattr(kizuna.store.ops_alerts, "_HOUR_US", _HOUR)


def test_the_kept_sums_equal_a_counting_of_every_object(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    incidents = node.find_collection(operation.collections["incidents"])
    soc = next(o.id for o in node.store.list_organisations() if o.name == "Games SOC")
    found = [indicator(f"host{n}.example", **({"created_by_ref": soc} if n % 2 else {})) for n in range(6)]
    seen = [sighting(found[n % 3]["id"], count=n + 1) for n in range(5)]
    node.import_objects(intel, found[:3] + seen[:2])
    node.import_objects(incidents, [sighting(found[0]["id"], count=7), found[3]])
    node.ingest_listeners.clear()  # as a process that never registered the listener
    node.import_objects(intel, found[3:] + seen[2:4])
    watch_arrivals(node)
    node.import_objects(intel, [seen[4]])  # after a gap: left to the next read
    check(node, operation)

    # New versions: another count, another producer; one sent after its newer version.
    node.import_objects(intel, [version(seen[0], count=40), version(found[1], created_by_ref=soc)])
    newer = version(version(seen[1], count=9))
    node.import_objects(intel, [newer])
    node.import_objects(intel, [version(seen[1], count=2)])  # older than `newer`: not counted
    node.import_objects(intel, [version(seen[3], count=5), version(version(seen[3], count=6))])
    assert node.store.get_setting(STATE_KEY + operation.slug)  # these batches were counted as they arrived
    check(node, operation)

    node.delete_object(NODE_ADMIN, intel.api_root, intel.id, seen[2]["id"], Filters())
    node.delete_object(NODE_ADMIN, intel.api_root, intel.id, newer["id"],
                       Filters(versions=VersionSelector(last=True)))  # its older versions stay
    node.import_objects(intel, [sighting(found[5]["id"])])
    check(node, operation)

    add_assets(node, operation, [("domain", "host1.example")])  # a changed watchlist: everything again
    node.import_objects(intel, [sighting(found[1]["id"], count=11)])
    check(node, operation)


def test_a_version_replaced_by_its_fuller_form_is_counted_once(room: tuple[Node, Operation, str]) -> None:
    """Federation replaces a redacted copy by its fuller form in place (``replace_form``): the row keeps its
    seq and moves past the watermark. Counted again at its new minute, it would count twice; the sums and
    alerts are rebuilt instead, as after a deletion."""
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    soc = next(o.id for o in node.store.list_organisations() if o.name == "Games SOC")
    found = indicator("tickets.games2027.example")
    seen = sighting(found["id"], count=4)
    node.import_objects(intel, [found, seen, indicator("host1.example")])
    check(node, operation)

    def fuller_form(obj: dict[str, Any]) -> None:
        new = prepare({**obj, "created_by_ref": soc, "description": "the full text"})
        assert isinstance(new, NewVersion) and new.version is not None
        assert node.store.replace_form(intel.pk, new, new.version) is not None

    fuller_form(seen)
    check(node, operation)  # caught up by the next read
    fuller_form(found)
    node.import_objects(intel, [sighting(found["id"], count=2)])  # and by the listener's next batch
    check(node, operation)
    alerts = [a for a in alerts_of(node, operation) if a.object_id == found["id"]]
    assert len(alerts) == 1 and alerts[0].producer == "Games SOC"


def test_a_node_that_kept_the_step_19_sums_is_migrated_and_counts_the_same(
        room: tuple[Node, Operation, str]) -> None:
    """Step 21 drops the per-minute object counts and the row-per-indicator sightings' sums of step 19
    and the judged-through marks: the next read rebuilds the sightings' sums in their new form."""
    node, operation, _ = room
    intel = node.find_collection(operation.collections["intel"])
    found = [indicator(f"host{n}.example") for n in range(3)]
    node.import_objects(intel, found + [sighting(found[n % 2]["id"], count=n + 2) for n in range(3)])
    refresh(node, operation)
    steps = dict(importlib.import_module(f"{type(node.store).__module__.rsplit('.', 1)[0]}.migrations").MIGRATIONS)
    store: Any = node.store
    with store._write() as cur:  # the store as a node at step 20 left it, its sums in the old form
        cur.execute("DELETE FROM schema_migrations WHERE version = 21")
        cur.execute("DROP TABLE ops_sighted")
        for statement in filter(str.strip, steps[19].split(";")):
            cur.execute(statement)
    assert node.store.get_setting(STATE_KEY + operation.slug)
    assert node.store.migrate() == node.store.schema_versions()[1]
    assert not node.store.get_setting(STATE_KEY + operation.slug)  # the marks went with the old sums
    check(node, operation)
    assert sums(node, operation) == sorted([(found[0]["id"], 2 + 4), (found[1]["id"], 3)])
