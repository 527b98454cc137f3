"""A page reads a bounded number of stored rows, whatever share of them its reader may see.

A partner that may see few rows of a collection (TLP:CLEAR among long runs of TLP:GREEN it is not party to)
gets pages cut short at the budget (`core/query.py`), with `more` true and a `next` that continues after
the last row read; following `next` still yields exactly what it may see, once each, in `date_added`
order. TAXII 2.1 §3.7 (envelope): "more — This property identifies if there is more content available
based on the request"; §3.4.1 (limit): the server's own cap may return fewer objects than the client's
`limit`. The node's own organisation, which sees every row, gets full pages. Real SQLite and PostgreSQL
stores; the last test pages a real `kizuna serve` with taxii2-client.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.policy import TLP2_IDS, TlpLevel
from kizuna.stix.timestamps import format_timestamp
from kizuna.store.base import VersionQuery, VersionSelector
from tests.conftest import TAXII, kizuna, start_server

CLEAR, GREEN = TLP2_IDS[TlpLevel.CLEAR], TLP2_IDS[TlpLevel.GREEN]
ALL = VersionSelector(all=True)


def _indicator(marking: str, n: int) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
        "pattern": f"[ipv4-addr:value = '198.51.100.{n % 250}']", "pattern_type": "stix",
        "valid_from": "2026-03-01T00:00:00Z", "object_marking_refs": [marking],
    }


def _runs(runs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """(visible, hidden) runs of TLP:CLEAR and TLP:GREEN indicators, in the order they will be added."""
    objects: list[dict[str, Any]] = []
    for clear, green in runs:
        objects += [_indicator(CLEAR, len(objects) + i) for i in range(clear)]
        objects += [_indicator(GREEN, len(objects) + i) for i in range(green)]
    return objects


@pytest.fixture()
def node(home_node: Node) -> Node:
    return home_node


def _fill(node: Node, objects: list[dict[str, Any]]) -> tuple[str, str]:
    """Add ``objects`` one envelope at a time (in order); tokens of the home organisation and of an outsider,
    which sees TLP:CLEAR only."""
    collection = node.create_collection("Shared", alias="shared")
    for start in range(0, len(objects), 500):
        report = node.import_objects(collection, objects[start:start + 500])
        assert report.failures == [], report.failures
    outsider = node.create_organisation("Outsider CERT", "AUS")["id"]
    assert node.home_organisation_id is not None
    _, own = node.create_token(node.home_organisation_id, read=["shared"])
    _, partner = node.create_token(outsider, read=["shared"])
    return own, partner


def _pages(node: Node, secret: str, limit: int) -> list[tuple[list[str], bool, int]]:
    """(ids, more, stored rows read) of every page, following ``next``."""
    principal = node.authenticate(secret)
    assert principal is not None
    read_rows: list[int] = []
    query_versions = node.store.query_versions

    def counting(query: Any) -> Any:
        rows = query_versions(query)
        read_rows[-1] += len(rows)
        return rows

    node.store.query_versions = counting  # type: ignore[method-assign]
    pages: list[tuple[list[str], bool, int]] = []
    filters = Filters(types=("indicator",), versions=ALL, limit=limit)
    try:
        while True:
            read_rows.append(0)
            page = node.read(node.readable(principal, "main", "shared"), Endpoint.OBJECTS, filters)
            pages.append(([row.stix_id for row, _ in page.items], page.more, read_rows[-1]))
            if not page.more:
                return pages
            assert page.next is not None
            filters = Filters(types=("indicator",), versions=ALL, limit=limit, next=page.next)
    finally:
        del node.store.query_versions


def test_a_page_stops_at_its_row_budget_and_next_continues_after_the_rows_read(node: Node) -> None:
    objects = _runs([(3, 120), (2, 7), (4, 300), (5, 0)])
    own, partner = _fill(node, objects)
    node.reader.rows_floor, node.reader.rows_per_object = 40, 4  # a page of 10 may read 44 rows
    node.reader.seconds_floor = node.reader.seconds_per_object = 3600.0  # only the rows bound here

    pages = _pages(node, partner, limit=10)
    assert all(read <= 44 for _, _, read in pages), [read for _, _, read in pages]
    served = [i for ids, _, _ in pages for i in ids]
    visible = [o["id"] for o in objects if o["object_marking_refs"] == [CLEAR]]
    assert served == visible  # all of them, once each, in the order they were added
    cut = [ids for ids, more, _ in pages if more and len(ids) < 10]
    assert [] in cut and len(cut) >= 5  # runs of 120 and 300 hidden rows: pages with nothing, but more
    assert len(pages) >= len(objects) // 44

    own_pages = _pages(node, own, limit=10)
    assert [len(ids) for ids, _, _ in own_pages[:-1]] == [10] * (len(own_pages) - 1)
    assert [i for ids, _, _ in own_pages for i in ids] == [o["id"] for o in objects]


def test_a_page_stops_at_its_time_budget_only_after_reading_a_chunk(node: Node) -> None:
    objects = _runs([(1, 260), (1, 260), (1, 0)])
    _, partner = _fill(node, objects)
    node.reader.seconds_floor = node.reader.seconds_per_object = 0.0  # every deadline has passed at once

    pages = _pages(node, partner, limit=10)
    # Fetches of at most a chunk (200 rows) each, and no cut for time before 200 rows are read.
    assert all(200 <= read < 400 for _, _, read in pages[:-1]), [read for _, _, read in pages]
    assert len(pages) >= 2 and pages[0][1] and len(pages[0][0]) < 10  # the first page was cut for time
    assert [i for ids, _, _ in pages for i in ids] == [o["id"] for o in objects if o["object_marking_refs"] == [CLEAR]]


def test_a_taxii_client_pages_through_cut_pages_and_an_empty_one_names_no_hidden_row(
    node: Node, tmp_path: Path
) -> None:
    from taxii2client.v21 import Collection, as_pages

    # 2,500 hidden rows in a row: more than two pages of 5 may read (1,000 rows each, ROWS_FLOOR).
    objects = _runs([(2, 2500), (3, 0)])
    _, partner = _fill(node, objects)
    collection_id = node.find_collection("shared").id
    server = start_server(node.config.data_dir, sync=False)
    try:
        url = f"{server.base}/main/collections/{collection_id}/"
        client = Collection(url, user="partner", password=partner)
        envelopes = list(as_pages(client.get_objects, per_request=5, type=["indicator"]))
        served = [o["id"] for e in envelopes for o in e.get("objects", [])]
        assert served == [o["id"] for o in objects if o["object_marking_refs"] == [CLEAR]]
        assert any(e.get("more") and not e.get("objects") for e in envelopes)  # a page cut with nothing in it

        # The empty cut page over plain HTTP: its date headers echo added_after, and neither they, the envelope
        # nor its cursor name the date_added of any row the partner may not see.
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {partner}"})
        first = session.get(url + "objects/", params={"limit": "5", "match[type]": "indicator"})
        assert len(first.json()["objects"]) == 2 and first.json()["more"] is True
        after = first.headers["X-TAXII-Date-Added-Last"]
        second = session.get(url + "objects/", params={"limit": "5", "match[type]": "indicator", "added_after": after})
        body = second.json()
        assert second.status_code == 200 and "objects" not in body and body["more"] is True
        assert second.headers["X-TAXII-Date-Added-First"] == second.headers["X-TAXII-Date-Added-Last"] == after
        stored = node.store.query_versions(VersionQuery(
            collection_pk=node.find_collection("shared").pk, versions=ALL, limit=10_000))
        hidden = [row.date_added for row in stored if GREEN in (row.markings or "")]
        assert len(hidden) == 2500
        cursor = base64.urlsafe_b64decode(body["next"].partition(".")[2] + "==")
        shown = (second.text + json.dumps(dict(second.headers))).encode() + cursor
        for micros in hidden:
            assert format_timestamp(micros).encode() not in shown and str(micros).encode() not in shown
    finally:
        server.stop()


def test_the_budget_is_set_in_kizuna_toml_and_a_wrong_value_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    kizuna(data_dir, "init", "--org-name", "Home", "--country", "GBR")
    config = data_dir / "kizuna.toml"
    text = config.read_text()
    assert "page_rows_per_object = 20" in text and "page_microseconds_per_object = 100" in text
    config.write_text(text.replace("page_rows_per_object = 20", "page_rows_per_object = 7"))
    opened = Node.open(data_dir)
    try:
        assert opened.reader.rows_per_object == 7 and opened.reader.seconds_per_object == 0.0001
    finally:
        opened.close()
    for wrong in ("0", "-3", '"many"', "2.5", "true"):
        said = "page_microseconds_per_object must be a whole number, 1 or more, not "
        config.write_text(text.replace("page_microseconds_per_object = 100", f"page_microseconds_per_object = {wrong}"))
        failed = kizuna(data_dir, "status", check=False)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        line, = failed.stderr.strip().splitlines()
        assert line.startswith("kizuna status: ") and said in line, line


def test_a_page_size_below_one_is_refused_with_its_line(tmp_path: Path) -> None:
    """max_page_size = 0 was accepted, and every TAXII objects read then failed with a 500; a negative default
    page went unnoticed. Both are refused where kizuna.toml is read, naming the line, as the budget's values are."""
    data_dir = tmp_path / "node"
    kizuna(data_dir, "init", "--org-name", "Home", "--country", "GBR")
    config = data_dir / "kizuna.toml"
    text = config.read_text()
    for key, written in (("default_page_size", 1000), ("max_page_size", 10000)):
        line = next(n for n, found in enumerate(text.splitlines(), 1) if found.startswith(key))
        for wrong in ("0", "-5", '"many"', "2.5"):
            config.write_text(text.replace(f"{key} = {written}", f"{key} = {wrong}"))
            failed = kizuna(data_dir, "status", "--json", check=False)
            error = json.loads(failed.stdout)["error"]
            assert failed.returncode == 1, failed.stdout
            assert f"[server] {key} must be a whole number, 1 or more, not " in error["message"], error
            assert (error["file"], error["line"]) == (str(config), line)
            text_form = kizuna(data_dir, "status", check=False).stderr
            assert text_form.endswith(f": {config}:{line}\n") and text_form.count("\n") == 1, text_form


def test_a_broken_or_misspelt_kizuna_toml_is_named_with_its_line(tmp_path: Path) -> None:
    """A misspelt key was ignored quietly (`acess = "token"` left /metrics open to loopback only, as if
    unset), and a TOML error carried its line only inside the message, never in `--json`'s line."""
    data_dir = tmp_path / "node"
    kizuna(data_dir, "init", "--org-name", "Home", "--country", "GBR")
    config = data_dir / "kizuna.toml"
    text = config.read_text()
    lines = text.count("\n")
    cases = [(text + '\n[metrics]\nacess = "token"\n', "unknown key [metrics] 'acess' (known: access)", lines + 3),
             (text.replace("max_page_size", "max_page_sise"), "unknown key [server] 'max_page_sise'",
              next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith("max_page_size"))),
             (text + "\nbroken = = 1\n", "not valid TOML: Invalid value", lines + 2)]
    for written, said, line in cases:
        config.write_text(written)
        failed = kizuna(data_dir, "status", "--json", check=False)
        error = json.loads(failed.stdout)["error"]
        assert failed.returncode == 1 and said in error["message"], error
        assert (error["file"], error["line"]) == (str(config), line)
        text_form = kizuna(data_dir, "status", check=False).stderr
        assert text_form.endswith(f": {config}:{line}\n") and text_form.count("\n") == 1
