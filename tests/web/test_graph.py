"""The object page's two-hop relationship graph against a real `kizuna serve`: its JSON leaves out an
AMBER+STRICT neighbour (and the edge to it) for the organisation not entitled to it, the vendored
cytoscape.js draws it in Chromium, and without JavaScript the page still lists the relationships."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import kizuna
from tests.web.conftest import CLEAR, Console, check_accessibility, shoot, signed_in


def add_graph_objects(console: Console, work: Path) -> Console:
    """The console with more to graph. Two hops from the indicator: the malware it indicates, then a
    campaign (TLP:CLEAR) and the AMBER+STRICT threat actor, both using that malware through TLP:CLEAR
    relationships."""
    campaign, uses_secret, uses_campaign = (f"{kind}--{uuid.uuid4()}" for kind in
                                            ("campaign", "relationship", "relationship"))
    common = {"spec_version": "2.1", "created": "2026-11-02T09:00:00.000Z", "modified": "2026-11-02T09:00:00.000Z",
              "object_marking_refs": [CLEAR]}
    objects = [
        {**common, "type": "campaign", "id": campaign, "name": "Fake ticket resale wave"},
        {**common, "type": "relationship", "id": uses_secret, "relationship_type": "uses",
         "source_ref": console.ids["secret"], "target_ref": console.ids["malware"]},
        {**common, "type": "relationship", "id": uses_campaign, "relationship_type": "uses",
         "source_ref": campaign, "target_ref": console.ids["malware"]},
    ]
    bundle = work / "graph.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
    kizuna(console.data_dir, "import", str(bundle), "--collection", "games", "--quiet")
    console.ids.update(campaign=campaign, uses_secret=uses_secret)
    return console


@pytest.fixture(scope="module")
def graphed(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Console:
    return add_graph_objects(console, tmp_path_factory.mktemp("graph"))


@pytest.fixture(scope="module")
def pg_graphed(pg_console: Console, tmp_path_factory: pytest.TempPathFactory) -> Console:
    return add_graph_objects(pg_console, tmp_path_factory.mktemp("pg-graph"))


def _graph(console: Console, who: str, object_id: str) -> Any:
    return console.sign_in(who).get(f"{console.base}/console/objects/{object_id}/graph.json?collection=games")


@pytest.mark.parametrize("backend", ["graphed", "pg_graphed"])
def test_an_amber_strict_neighbour_is_absent_from_the_other_organisations_graph(
    backend: str, request: pytest.FixtureRequest,
) -> None:
    graphed: Console = request.getfixturevalue(backend)
    ids = graphed.ids
    uk = _graph(graphed, "uk", ids["indicator"]).json()
    jp = _graph(graphed, "jp", ids["indicator"]).json()
    uk_hops = {n["id"]: n["hops"] for n in uk["nodes"]}
    assert uk_hops == {ids["indicator"]: 0, ids["malware"]: 1, ids["campaign"]: 2, ids["secret"]: 2}
    assert ids["uses_secret"] in {e["id"] for e in uk["edges"]}
    jp_hops = {n["id"]: n["hops"] for n in jp["nodes"]}
    assert jp_hops == {ids["indicator"]: 0, ids["malware"]: 1, ids["campaign"]: 2}
    # The relationship itself is TLP:CLEAR, but it leads to the hidden actor: no dangling edge either.
    assert all(ids["secret"] not in (e["source"], e["target"], e["id"]) for e in jp["edges"])
    assert "Quiet Lantern" not in json.dumps(jp)
    assert {(e["source"], e["target"]) for e in jp["edges"]} == {
        (ids["indicator"], ids["malware"]), (ids["campaign"], ids["malware"])}
    hidden = _graph(graphed, "jp", ids["secret"])
    absent = _graph(graphed, "jp", "threat-actor--00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == absent.status_code == 404


def test_the_graph_renders_in_the_browser_and_the_page_reads_without_javascript(
    graphed: Console, browser: Any,
) -> None:
    page = signed_in(browser, graphed, "jp", browse=False)
    page.goto(f"{graphed.base}/console/objects/{graphed.ids['malware']}?collection=games")
    box = page.locator("#graph")
    expect(box).to_have_attribute("data-nodes", "3")  # malware, indicator, campaign; not the actor
    assert box.locator("canvas").count() >= 1
    assert page.locator(".graph-fallback").count() == 0
    shoot(page, "object-graph-en")
    check_accessibility(page)
    page.context.close()

    static = signed_in(browser, graphed, "uk", javascript=False, browse=False)
    static.goto(f"{graphed.base}/console/objects/{graphed.ids['malware']}?collection=games")
    assert static.locator(".graph-fallback").is_visible()
    assert static.locator("#graph canvas").count() == 0
    listed = static.locator("ul.relationships").inner_text()
    assert "Operation Quiet Lantern" in listed and "Fake ticket resale wave" in listed
    static.context.close()


def test_the_object_pages_title_is_only_its_name(graphed: Console) -> None:
    """The graph's scripts load in the head, not inside the title, which is the name and nothing else."""
    html = graphed.sign_in("uk").get(f"{graphed.base}/console/objects/{graphed.ids['malware']}?collection=games").text
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title and title.group(1) == "Ticket stealer · Kizuna console"
    head = html.split("</head>", 1)[0]
    assert '<script src="/console/static/graph.js" defer></script>' in head
