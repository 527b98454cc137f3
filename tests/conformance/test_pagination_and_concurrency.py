"""TAXII 2.1 rules §6 (pagination): more/next, date headers, added_after resumption,
cursor security, a property test over random histories, concurrent writers, and several
server processes on one store.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.conftest import (
    ExtraCollection,
    assert_taxii,
    assert_taxii_error,
    indicator,
    instant,
    make_collection,
    manifest_of,
    objects_url,
    page_through,
    stix_time,
    versions_of,
)
from tests.conftest import TAXII, Node, ServerProcess, kizuna_json, start_server

_HEADERS = ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last")


def _items(body: dict[str, Any], key: str = "objects") -> list[Any]:
    return list(body.get(key, []))


def _key(item: dict[str, Any]) -> tuple[str, int]:
    """(id, version instant) of a STIX object or a manifest record."""
    return item["id"], instant(item.get("version") or item.get("modified") or item["created"])


def _date_added(node: Node, ids: list[str]) -> dict[tuple[str, int], int]:
    return {_key(r): instant(r["date_added"]) for r in manifest_of(node, ids)}


def _check_headers(response: requests.Response, added: list[int]) -> None:
    # rules §6.5: on every page, first/last equal the first/last item's date_added
    first, last = (instant(response.headers[h]) for h in _HEADERS)
    assert (first, last) == (added[0], added[-1])


# -- more / next / headers -------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["objects/", "manifest/"])
@pytest.mark.parametrize("use_next", [True, False])
def test_paging_listings_with_next_or_added_after(node: Node, suffix: str, use_next: bool) -> None:
    # rules §6.1, §6.2 (next), §6.3 (added_after = X-TAXII-Date-Added-Last), §6.5
    objs = [indicator() for _ in range(7)]
    node.post(objs[:3])
    node.post(objs[3:])
    ids = [o["id"] for o in objs]
    added = _date_added(node, ids)
    params = {"match[id]": ",".join(ids), "limit": "3"}
    seen: list[tuple[str, int]] = []
    pages = list(page_through(node.session(), node.collection_url() + suffix, params, use_next=use_next))
    assert [len(_items(p.json())) for p in pages] == [3, 3, 1]
    for number, response in enumerate(pages):
        body = response.json()
        assert body["more"] is (number < 2)
        if use_next and body["more"]:
            assert isinstance(body["next"], str) and body["next"]
        keys = [_key(o) for o in _items(body)]
        _check_headers(response, [added[k] for k in keys])
        seen += keys
    assert seen == [_key(o) for o in objs]


def test_paging_one_object_and_its_versions(node: Node) -> None:
    # rules §6.1-6.5 on the object and versions endpoints
    sent = versions_of(5)
    node.post(sent)
    added = _date_added(node, [sent[0]["id"]])
    url = objects_url(node) + sent[0]["id"] + "/"
    for use_next in (True, False):
        got: list[tuple[str, int]] = []
        for response in page_through(node.session(), url, {"match[version]": "all", "limit": "2"}, use_next):
            keys = [_key(o) for o in _items(response.json())]
            _check_headers(response, [added[k] for k in keys])
            got += keys
        assert got == [_key(o) for o in sent]
        versions: list[int] = []
        for response in page_through(node.session(), url + "versions/", {"limit": "2"}, use_next):
            page = [instant(v) for v in response.json().get("versions", [])]
            _check_headers(response, [added[(sent[0]["id"], v)] for v in page])
            versions += page
        assert versions == [instant(o["modified"]) for o in sent]


def test_date_headers_on_empty_pages(node: Node) -> None:
    # rules §6.5 (unspecified for empty pages); Kizuna's rule: echo added_after, otherwise omit
    absent = f"indicator--{uuid.uuid4()}"
    session = node.session()
    for suffix in ("objects/", "manifest/"):
        response = session.get(node.collection_url() + suffix, params={"match[id]": absent})
        assert all(h not in response.headers for h in _HEADERS)
        after = "2031-02-03T04:05:06.123456Z"
        response = session.get(node.collection_url() + suffix, params={"match[id]": absent, "added_after": after})
        assert [response.headers[h] for h in _HEADERS] == [after, after]
        lenient = session.get(node.collection_url() + suffix,
                              params={"match[id]": absent, "added_after": "2031-02-03T04:05:06Z"})
        assert [lenient.headers[h] for h in _HEADERS] == ["2031-02-03T04:05:06.000000Z"] * 2


def test_more_followed_by_an_empty_page_after_a_delete(node: Node) -> None:
    # rules §6.4: more:true then an empty page is legal (deletion race)
    objs = [indicator() for _ in range(3)]
    node.post(objs)
    params = {"match[id]": ",".join(o["id"] for o in objs), "limit": "2"}
    session = node.session()
    first = assert_taxii(session.get(objects_url(node), params=params))
    assert first["more"] is True
    assert session.delete(objects_url(node) + objs[2]["id"] + "/").status_code == 200
    response = session.get(objects_url(node), params={**params, "next": first["next"]})
    body = assert_taxii(response)
    assert "objects" not in body and body.get("more", False) is False
    assert all(h not in response.headers for h in _HEADERS)


# -- cursor security (§6.6) ----------------------------------------------------------------

@pytest.fixture()
def minted(node: Node) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    objs = [indicator() for _ in range(4)]
    node.post(objs)
    params = {"match[id]": ",".join(o["id"] for o in objs), "limit": "2"}
    body = assert_taxii(node.session().get(objects_url(node), params=params))
    return objs, params, body["next"]


def _assert_no_leak(response: requests.Response, objs: list[dict[str, Any]], status: int = 400) -> None:
    assert_taxii_error(response, status)
    assert not any(o["id"] in response.text for o in objs)


def test_next_from_another_principal_is_refused(node: Node, minted: Any) -> None:
    # rules §6.6: a cursor minted for the writer, presented by the reader (who may read the collection)
    objs, params, token = minted
    _assert_no_leak(node.session("reader").get(objects_url(node), params={**params, "next": token}), objs)
    _assert_no_leak(node.session("outsider").get(objects_url(node), params={**params, "next": token}), objs, 404)
    # and the owner can still use it
    body = assert_taxii(node.session().get(objects_url(node), params={**params, "next": token}))
    assert [o["id"] for o in body["objects"]] == [o["id"] for o in objs[2:]]


@pytest.mark.parametrize("change", [
    "drop match[id]", "other match[id]", "add match[type]", "add match[version]", "add added_after",
    "add match[spec_version]", "manifest endpoint", "other collection", "tampered", "truncated",
])
def test_next_with_a_different_query_is_400(node: Node, minted: Any, change: str) -> None:
    # rules §6.6: changing the filters while reusing next → 400, with nothing leaked
    objs, params, token = minted
    url = objects_url(node)
    query = {**params, "next": token}
    if change == "drop match[id]":
        del query["match[id]"]
    elif change == "other match[id]":
        query["match[id]"] = objs[0]["id"]
    elif change == "add match[type]":
        query["match[type]"] = "indicator"
    elif change == "add match[version]":
        query["match[version]"] = "all"
    elif change == "add added_after":
        query["added_after"] = "2000-01-01T00:00:00Z"
    elif change == "add match[spec_version]":
        query["match[spec_version]"] = "2.1"
    elif change == "manifest endpoint":
        url = node.collection_url() + "manifest/"
    elif change == "other collection":
        url = objects_url(node, node.other_collection)
    elif change == "tampered":  # change the sealed position by one bit, keeping the cursor's form
        prefix, _, sealed = token.partition(".")
        raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
        raw[len(raw) // 2] ^= 1
        query["next"] = prefix + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    else:
        query["next"] = token[: len(token) // 2]
    _assert_no_leak(node.session().get(url, params=query), objs)


def test_next_survives_a_different_page_size(node: Node, minted: Any) -> None:
    # rules §6.2: the limit is a page size, not a filter, so it may change between pages
    objs, params, token = minted
    body = assert_taxii(node.session().get(objects_url(node), params={**params, "limit": "1", "next": token}))
    assert [o["id"] for o in body["objects"]] == [objs[2]["id"]] and body["more"] is True


# -- property: random histories, random limits and version filters --------------------

_HISTORY = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4)  # versions per id


@st.composite
def _scenario(draw: st.DrawFn) -> dict[str, Any]:
    counts = draw(_HISTORY)
    objects = [indicator(object_id, stix_time(0), stix_time(v))
               for object_id, count in ((f"indicator--{uuid.uuid4()}", c) for c in counts)
               for v in range(count)]
    order = draw(st.permutations(range(len(objects))))
    repeats = draw(st.lists(st.sampled_from(range(len(objects))), max_size=3))
    sequence = [objects[i] for i in [*order, *repeats]]
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(sequence) - 1)), max_size=3)))
    batches = [sequence[a:b] for a, b in zip([0, *cuts], [*cuts, len(sequence)], strict=True) if sequence[a:b]]
    keyword = draw(st.sampled_from([None, "first", "last", "all", "first,last", "exact", "last,exact", "first,exact"]))
    exact = draw(st.sets(st.integers(min_value=0, max_value=3), min_size=1, max_size=3))
    return {
        "objects": objects, "batches": batches, "keyword": keyword, "exact": sorted(exact),
        "limit": draw(st.integers(min_value=1, max_value=6)), "use_next": draw(st.booleans()),
        "endpoint": draw(st.sampled_from(["objects/", "manifest/"])),
    }


def _expected(objects: list[dict[str, Any]], keyword: str | None, exact: list[int]) -> set[tuple[str, int]]:
    by_id: dict[str, list[int]] = {}
    for obj in objects:
        by_id.setdefault(obj["id"], []).append(instant(obj["modified"]))
    wanted_exact = {instant(stix_time(v)) for v in exact}
    parts = set((keyword or "last").split(","))
    chosen: set[tuple[str, int]] = set()
    for object_id, versions in by_id.items():
        if "all" in parts:
            chosen |= {(object_id, v) for v in versions}
        if "first" in parts:
            chosen.add((object_id, min(versions)))
        if "last" in parts:
            chosen.add((object_id, max(versions)))
        if "exact" in parts:
            chosen |= {(object_id, v) for v in versions if v in wanted_exact}
    return chosen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(scenario=_scenario())
def test_paging_returns_exactly_the_selected_versions_in_date_added_order(node: Node, scenario: Any) -> None:
    # rules §5.7, §5.9, §6.1-6.3, §6.5 together
    for batch in scenario["batches"]:
        node.post(batch)
    objects = scenario["objects"]
    ids = list(dict.fromkeys(o["id"] for o in objects))
    added = _date_added(node, ids)
    assert set(added) == {_key(o) for o in objects}  # repeats added nothing
    keyword = scenario["keyword"]
    params = {"match[id]": ",".join(ids), "limit": str(scenario["limit"])}
    if keyword is not None:
        exact = ",".join(stix_time(v) for v in scenario["exact"])
        params["match[version]"] = keyword.replace("exact", exact)
    got: list[tuple[str, int]] = []
    url = node.collection_url() + scenario["endpoint"]
    for response in page_through(node.session(), url, params, use_next=scenario["use_next"]):
        page = [_key(o) for o in response.json().get("objects", [])]
        assert len(page) <= scenario["limit"]
        if page:
            _check_headers(response, [added[k] for k in page])
        got += page
    expected = _expected(objects, keyword, scenario["exact"])
    assert got == sorted(expected, key=added.__getitem__)


# -- concurrency -------------------------------------------------------------------------

def _follow(collection: ExtraCollection, use_next: bool, writers_done: threading.Event,
            seen: list[tuple[str, int]], errors: list[BaseException]) -> None:
    """Page the whole collection while it grows, until a pass after the writers finished is empty."""
    try:
        session = collection.session()
        after: str | None = None  # X-TAXII-Date-Added-Last of the last non-empty page
        chain_after: str | None = None  # the added_after a chain of next cursors started from
        cursor: str | None = None
        while True:
            finished = writers_done.is_set()
            params = {"limit": "7", "match[version]": "all"}
            if cursor is None:
                chain_after = after
            else:
                params["next"] = cursor  # with the same filters, so the same added_after
            if chain_after is not None:
                params["added_after"] = chain_after
            response = session.get(collection.url + "objects/", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            seen.extend(_key(o) for o in body.get("objects", []))
            if "objects" in body:
                after = response.headers["X-TAXII-Date-Added-Last"]
            if body.get("more"):
                cursor = body.get("next") if use_next else None
                continue
            cursor = None
            if finished:
                return
            writers_done.wait(0.005)  # throttle an idle reader; correctness never depends on it
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread
        errors.append(exc)


def test_concurrent_writers_and_paging_readers_see_every_object_once(node: Node) -> None:
    # rules §6.3 (no skips or repeats with added_after), §6.2 (next), §5.9, under concurrent commits
    collection = make_collection(node, f"Concurrency {uuid.uuid4()}")
    committed: set[tuple[str, int]] = set()
    lock = threading.Lock()
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            session = collection.session()
            for round_ in range(8):
                objs = [indicator() for _ in range(5)]
                if round_ % 3 == 2:  # some new versions of objects this worker already wrote
                    objs[0] = indicator(objs[0]["id"])
                response = session.post(collection.url + "objects/", json={"objects": objs},
                                        headers={"Content-Type": TAXII})
                assert response.status_code == 202, response.text
                status = response.json()
                assert status["success_count"] == 5
                with lock:
                    committed.update((s["id"], instant(s["version"])) for s in status["successes"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    readers = {mode: [] for mode in ("next", "added_after")}  # type: dict[str, list[tuple[str, int]]]
    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=_follow, args=(collection, mode == "next", writers_done, seen, errors))
                for mode, seen in readers.items()]
    for thread in threads:
        thread.start()
    for thread in threads[:4]:
        thread.join(timeout=120)
    writers_done.set()
    for thread in threads[4:]:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(committed) == 4 * 8 * 5
    for mode, seen in readers.items():
        assert len(seen) == len(set(seen)), f"{mode}: duplicates"
        assert set(seen) == committed, f"{mode}: missing {len(committed - set(seen))}"


# -- several server processes on one store ----------------------------------------------

@pytest.fixture()
def second_server(node: Node) -> Iterator[ServerProcess]:
    server = start_server(node.data_dir)
    try:
        yield server
    finally:
        server.stop()


def test_two_processes_behave_as_one_server(node: Node, second_server: ServerProcess) -> None:
    # rules §6.7: cursors survive multiple workers; statuses are shared state
    objs = [indicator() for _ in range(5)]
    status = node.post(objs)
    other_base = f"{second_server.base}/main/collections/{node.collection}/"
    session = node.session()
    assert assert_taxii(session.get(f"{second_server.base}/main/status/{status['id']}/")) == status
    params = {"match[id]": ",".join(o["id"] for o in objs), "limit": "2"}
    first = assert_taxii(session.get(objects_url(node), params=params))
    second = assert_taxii(session.get(other_base + "objects/", params={**params, "next": first["next"]}))
    third = assert_taxii(session.get(objects_url(node), params={**params, "next": second["next"]}))
    pages = [first, second, third]
    assert [o["id"] for p in pages for o in p["objects"]] == [o["id"] for o in objs]
    assert third["more"] is False
    # a write through the second process is visible, and its status readable, through the first
    late = indicator()
    response = session.post(other_base + "objects/", json={"objects": [late]}, headers={"Content-Type": TAXII})
    late_status = assert_taxii(response, 202)
    assert assert_taxii(session.get(f"{node.api_root}status/{late_status['id']}/")) == late_status
    assert [r["id"] for r in manifest_of(node, [late["id"]])] == [late["id"]]
    # and the reader's cursor minted by one process is refused for the writer by the other
    reader_first = assert_taxii(node.session("reader").get(objects_url(node), params=params))
    refused = session.get(other_base + "objects/", params={**params, "next": reader_first["next"]})
    assert_taxii_error(refused, 400)


# -- a server-side page cap (§5.3) ---------------------------------------------------------

@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, str]]:
    """A SQLite node whose default page is 2 and whose largest page is 3 objects."""
    data_dir: Path = tmp_path_factory.mktemp("capped") / "node"
    kizuna_json(data_dir, "init", "--org-name", "Capped")
    collection = kizuna_json(data_dir, "collections", "create", "--title", "Capped")["id"]
    token = kizuna_json(data_dir, "tokens", "create", "--org", "Capped", "--read", collection,
                        "--write", collection)["token"]
    config = data_dir / "kizuna.toml"
    text = re.sub(r"default_page_size = \d+", "default_page_size = 2", config.read_text())
    config.write_text(re.sub(r"max_page_size = \d+", "max_page_size = 3", text))
    server = start_server(data_dir)
    try:
        yield server, f"{server.base}/main/collections/{collection}/", token
    finally:
        server.stop()


def test_server_page_cap_sets_more_and_paging_still_returns_everything(
    capped: tuple[ServerProcess, str, str],
) -> None:
    # rules §5.3 (the server may return fewer than asked because of its own cap), §6.1
    _, url, token = capped
    session = requests.Session()
    session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {token}"})
    objs = [indicator() for _ in range(7)]
    response = session.post(url + "objects/", json={"objects": objs}, headers={"Content-Type": TAXII})
    assert response.status_code == 202
    params = {"match[id]": ",".join(o["id"] for o in objs)}
    default = assert_taxii(session.get(url + "objects/", params=params))
    assert len(default["objects"]) == 2 and default["more"] is True
    for use_next in (True, False):
        pages = list(page_through(session, url + "objects/", {**params, "limit": "100"}, use_next=use_next))
        assert [len(p.json().get("objects", [])) for p in pages] == [3, 3, 1]
        assert [o["id"] for p in pages for o in p.json()["objects"]] == [o["id"] for o in objs]
    from taxii2client.v21 import Collection, as_pages

    client = Collection(url, user="capped", password=token)
    got = [o["id"] for page in as_pages(client.get_objects, per_request=5, id=[o["id"] for o in objs])
           for o in page.get("objects", [])]
    assert got == [o["id"] for o in objs]
