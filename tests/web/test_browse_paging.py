"""Browse pages through a collection exactly: every visible object once, in the order added, whatever
the filter, and the count says how many there are (over HTTP, against a real server)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.policy import TLP2_IDS
from kizuna.policy.tlp import TlpLevel
from tests.conftest import kizuna
from tests.web.conftest import Console, running_console

PER_PAGE = 50
LINK = re.compile(r'href="/console/objects/([a-z0-9-]+--[0-9a-f-]{36})\?collection=games"')
NEXT = re.compile(r'<a rel="next" href="([^"]+)">')


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    base = tmp_path_factory.mktemp("paging")
    with running_console(base) as running:
        # 130 more indicators, alternately TLP:CLEAR and TLP:AMBER+STRICT (which Japan may not see).
        marks = [TLP2_IDS[TlpLevel.CLEAR], TLP2_IDS[TlpLevel.AMBER_STRICT]]
        identity = json.loads(kizuna(running.data_dir, "status", "--json").stdout)["identity"]
        objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
                    "created": "2026-11-02T00:00:00.000Z", "modified": "2026-11-02T00:00:00.000Z",
                    "name": f"Bulk {n}", "pattern_type": "stix", "pattern": f"[ipv4-addr:value = '10.0.0.{n}']",
                    "valid_from": "2026-11-02T00:00:00Z", "created_by_ref": identity,
                    "object_marking_refs": [marks[n % 2]]} for n in range(130)]
        bundle = Path(base) / "bulk.json"
        bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        kizuna(running.data_dir, "import", str(bundle), "--collection", "games", "--quiet")
        yield running


def _taxii_objects(node: Console, who: str, **params: str) -> list[dict[str, Any]]:
    headers = {"Accept": "application/taxii+json;version=2.1", "Authorization": f"Bearer {node.tokens[who]}"}
    envelope = requests.get(f"{node.base}/main/collections/games/objects/", headers=headers, params=params,
                            timeout=30).json()
    assert not envelope["more"]
    return list(envelope.get("objects", []))


def _all_pages(session: requests.Session, url: str) -> tuple[list[str], str, int]:
    ids: list[str] = []
    pages = 0
    first = session.get(url)
    count = re.search(r'id="result-count">\s*([^<]+?)\s*</p>', first.text)
    assert count
    page: Any = first
    while True:
        pages += 1
        found = LINK.findall(page.text)
        assert len(found) <= PER_PAGE
        ids += found
        following = NEXT.search(page.text)
        if not following:
            return ids, count.group(1), pages
        page = session.get(session_base(url) + following.group(1).replace("&amp;", "&"))


def session_base(url: str) -> str:
    return url.split("/console/")[0]


@pytest.mark.parametrize("who,query", [("uk", ""), ("jp", ""), ("uk", "&type=indicator"),
                                       ("uk", "&tlp=amber%2Bstrict"), ("jp", "&tlp=amber%2Bstrict")])
def test_pages_hold_every_visible_object_once_in_order(node: Console, who: str, query: str) -> None:
    session = node.sign_in(who)
    ids, count, pages = _all_pages(session, f"{node.base}/console/browse?collection=games{query}")
    received = _taxii_objects(node, who, **({"match[type]": "indicator"} if "type=" in query else {}))
    strict = TLP2_IDS[TlpLevel.AMBER_STRICT]
    expected = [o["id"] for o in received if "tlp=" not in query or strict in o.get("object_marking_refs", [])]
    assert expected or who == "jp"  # the filter selects something for the UK, nothing for Japan
    assert ids == expected  # the same objects, each once, in the order added
    assert count == (f"{len(expected)} objects" if len(expected) != 1 else "1 object")
    assert pages == max(1, -(-len(expected) // PER_PAGE))

