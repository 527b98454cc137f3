"""A directory's MISP, STIX 1.x and STIX 2.0 files converted by worker processes ahead of the importing one.

What a directory import stores and reports must not depend on how many processes converted it: the tests
import the same directory with ``--workers 2`` and ``--workers 1`` into two nodes and compare everything but
the nodes' own ids. An event without a timestamp is dated by its file, so the same file gives the same
objects whichever second, or worker, converts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna, kizuna_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "formats"
MISP_FIXTURES = ROOT / "tests" / "fixtures" / "misp"
EVENTS = ("galaxy_1.json", "mainly_objects_1.json", "mainly_objects_2.json", "existing_event.json",
          "image_event.json", "57c4445b-c548-4654-af0b-4be3950d210f.json")


def _node(path: Path) -> Path:
    kizuna_json(path, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(path, "collections", "create", "--title", "In", "--alias", "in")
    return path


def _mixed_directory(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(EXAMPLES / "misp-event.json", folder / "a-misp-event.json")
    for n, name in enumerate(EVENTS):
        shutil.copy(MISP_FIXTURES / name, folder / f"b{n}-{name}")
    shutil.copy(EXAMPLES / "stix1-indicator.xml", folder / "c-stix1.xml")
    shutil.copy(EXAMPLES / "stix20-bundle.json", folder / "d-stix20.json")
    shutil.copy(EXAMPLES / "iocs.csv", folder / "e-iocs.csv")  # converted by the importing process itself
    (folder / "f-broken.json").write_text('{"Event": {"info": "cut short",\n "Attribute": [}}')
    return folder


def _without_node_ids(report: dict[str, Any]) -> str:
    text = json.dumps({k: v for k, v in report.items() if k not in ("audit_seq", "conversion_workers")},
                      sort_keys=True)
    return text.replace(report["collection"], "COLLECTION")


def _stored(node: Path) -> list[dict[str, Any]]:
    page = kizuna_json(node, "objects", "list", "--collection", "in", "--limit", "1000", "--version", "all")
    assert not page["more"]
    return sorted(page["objects"], key=lambda o: (o["id"], o.get("modified", "")))


def _undated_by_import(objects: list[dict[str, Any]], since: str) -> list[dict[str, Any]]:
    """The objects, those the import itself dated (an IOC list's indicators are created when imported)
    without their dates: two imports a moment apart differ there and nowhere else."""
    return [{k: v for k, v in o.items() if k not in ("created", "modified")} if o.get("created", "") >= since
            else o for o in objects]


def test_a_directory_converted_by_workers_stores_and_reports_what_one_process_does(tmp_path: Path) -> None:
    folder = _mixed_directory(tmp_path)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    reports = {}
    for workers in ("2", "1"):
        node = _node(tmp_path / f"node-{workers}")
        result = kizuna(node, "import", str(folder), "--collection", "in", "--json", "--workers", workers,
                        check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr  # the broken file
        reports[workers] = (json.loads(result.stdout), _stored(node))
    (parallel, parallel_objects), (serial, serial_objects) = reports["2"], reports["1"]
    assert parallel["conversion_workers"] == 2 and serial["conversion_workers"] == 0
    assert [s["format"] for s in parallel["sources"]] == ["misp"] * 7 + ["stix1", "stix20", "ioc-csv"]
    (broken,) = parallel["failed_sources"]
    assert broken["where"] == f"{folder / 'f-broken.json'}:2" and "not valid JSON" in broken["error"]
    assert parallel["stored"] > 500 and parallel["sources"][0]["flagged"] == 1  # warninglists reach workers
    assert _without_node_ids(parallel) == _without_node_ids(serial)
    assert len(parallel_objects) == len(serial_objects) > 500
    assert _undated_by_import(parallel_objects, since) == _undated_by_import(serial_objects, since)


def test_the_text_report_and_exit_say_the_same_with_workers(tmp_path: Path) -> None:
    folder = _mixed_directory(tmp_path)
    said = []
    for workers in ("2", "1"):
        node = _node(tmp_path / f"node-{workers}")
        result = kizuna(node, "import", str(folder), "--collection", "in", "--workers", workers, check=False)
        said.append((result.returncode, result.stdout, result.stderr))
    assert said[0] == said[1]
    code, out, err = said[0]
    assert code == 1 and f"{folder / 'f-broken.json'}:2: not imported" in out
    assert err == "kizuna import: 1 of 11 files not imported, 1 input record not converted (listed above)\n"


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_a_wrong_worker_count_is_one_line(tmp_path: Path, workers: str) -> None:
    node = _node(tmp_path / "node")
    result = kizuna(node, "import", str(EXAMPLES), "--collection", "in", "--workers", workers, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "--workers" in result.stderr


def test_an_undated_misp_event_is_dated_by_its_file_and_imports_again_as_duplicates(tmp_path: Path) -> None:
    event = json.loads((EXAMPLES / "misp-event.json").read_text())
    event["Event"].pop("timestamp", None)
    for attribute in event["Event"].get("Attribute", []):
        attribute.pop("timestamp", None)
    path = tmp_path / "undated.json"
    path.write_text(json.dumps(event))
    filed = datetime(2025, 5, 1, 9, 30, 15, tzinfo=UTC)
    os.utime(path, (filed.timestamp(), filed.timestamp()))
    node = _node(tmp_path / "node")
    first = kizuna_json(node, "import", str(path), "--collection", "in")
    assert first["stored"] > 0 and first["rejected"] == 0
    assert any(f"dated {int(filed.timestamp())} (the file's time)" in w for w in first["sources"][0]["warnings"])
    grouping = next(o for o in _stored(node) if o["type"] == "grouping")
    assert grouping["modified"] == "2025-05-01T09:30:15.000Z"
    again = kizuna_json(node, "import", str(path), "--collection", "in")
    assert again["stored"] == 0 and again["rejected"] == 0
    assert again["duplicates"] == first["stored"] + first["duplicates"]


def test_workers_killed_mid_import_leave_the_rest_converted_here(tmp_path: Path) -> None:
    """A worker killed (out of memory, an operator's signal) loses no file: what it had not returned, and
    every file after it, is converted by the importing process, in order."""
    import multiprocessing

    from kizuna.formats.convert_ahead import Job, converted_in_order
    from kizuna.formats.detect_format import IocOptions

    folder = _mixed_directory(tmp_path)
    jobs = [Job(path, str(path), fmt) for path, fmt in sorted(
        (p, "misp" if p.name.startswith(("a", "b", "f")) else "stix1" if p.suffix == ".xml" else "ioc-csv"
         if p.suffix == ".csv" else "stix20") for p in folder.iterdir())]
    expected = [None if o is None else (o.converted.report.objects if o.converted else o.malformed)
                for o in converted_in_order(jobs, IocOptions(), None, 0)]
    outcomes = converted_in_order(jobs, IocOptions(), None, 2)
    seen = [next(outcomes)]
    workers = multiprocessing.active_children()
    assert len(workers) == 2
    for worker in workers:
        os.kill(worker.pid or 0, signal.SIGKILL)
    seen.extend(outcomes)
    assert [None if o is None else (o.converted.report.objects if o.converted else o.malformed)
            for o in seen] == expected
    assert not multiprocessing.active_children()


def test_a_single_file_is_converted_without_workers(tmp_path: Path) -> None:
    node = _node(tmp_path / "node")
    report = kizuna_json(node, "import", str(EXAMPLES / "misp-event.json"), "--collection", "in", "--workers", "2")
    assert report["conversion_workers"] == 0 and report["stored"] > 0
    assert re.fullmatch(r"[0-9a-f-]{36}", report["collection"])


def test_the_events_of_one_misp_file_are_converted_by_workers_alike(tmp_path: Path) -> None:
    """A MISP search result (`{"response": [{"Event": …}, …]}`) is one file of many events: workers convert its
    events, and what is stored and reported is what one process stores and reports."""
    events = [json.loads((MISP_FIXTURES / name).read_text()) for name in EVENTS]
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"response": [e if "Event" in e else {"Event": e} for e in events]}))
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    said = {}
    for workers in ("2", "1"):
        node = _node(tmp_path / f"node-{workers}")
        report = kizuna_json(node, "import", str(search), "--collection", "in", "--workers", workers)
        said[workers] = (_without_node_ids(report), _undated_by_import(_stored(node), since))
    assert said["2"] == said["1"]
    assert len(said["2"][1]) > 300
