"""Each principal sees its own history of an object (docs/policy.md), over HTTP, on both backends.

``match[version]=first``, ``last`` and the default choose among the versions the reader may see; the
objects, object, versions and manifest endpoints agree, and pages neither skip nor repeat around objects
whose stored first or last version the reader may not see.  ``au`` reads up to TLP:GREEN, ``reader``
(JPCERT/CC) up to TLP:AMBER, ``writer`` is the producer's own organisation.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from kizuna.stix.timestamps import parse_timestamp
from tests.policy_node.conftest import AMBER, AMBER_STRICT, GREEN, World, relationship, sdo

Version = tuple[str, int]  # (id, version µs): servers may write a timestamp with more digits


def history(world: World, stix_type: str, markings: list[str], **extra: Any) -> list[dict[str, Any]]:
    """Versions of one object, one day apart, each posted on its own (so date_added follows version)."""
    first = sdo(stix_type, world.uk, **extra)
    found = []
    for day, marking in enumerate(markings, start=1):
        obj = {**first, "modified": f"2026-03-{day:02d}T00:00:00.000Z", "object_marking_refs": [marking]}
        found.append(obj)
    return found


def post_each(world: World, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        assert world.node.post([obj])["success_count"] == 1


def _get(world: World, token: str, path: str, params: dict[str, str]) -> requests.Response:
    response = world.node.session(token).get(world.node.collection_url() + path, params=params)
    assert response.status_code in (200, 404), response.text
    return response


def listing(world: World, token: str, endpoint: str, ids: list[str], version: str | None = None,
            limit: int | None = None, by_date_header: bool = False) -> list[Version]:
    """Every (id, version) ``endpoint`` lists for these ids, page by page, in the order served.

    Pages follow ``next``, or with ``by_date_header`` restart from ``X-TAXII-Date-Added-Last`` (how
    clients page servers that give no ``next``)."""
    params = {"match[id]": ",".join(ids)}
    if version is not None:
        params["match[version]"] = version
    if limit is not None:
        params["limit"] = str(limit)
    found: list[Version] = []
    query = dict(params)
    while True:
        response = _get(world, token, endpoint + "/", query)
        assert response.status_code == 200
        body = response.json()
        entries = body.get("objects", [])
        found += [(e["id"], parse_timestamp(e["modified"] if endpoint == "objects" else e["version"]))
                  for e in entries]
        if not body.get("more"):
            return found
        assert entries, "a page that says more must not be empty"
        if by_date_header:
            query = {**params, "added_after": response.headers["X-TAXII-Date-Added-Last"]}
        else:
            query = {**params, "next": body["next"]}


def single(world: World, token: str, object_id: str, version: str | None = None) -> list[Version]:
    params = {} if version is None else {"match[version]": version}
    response = _get(world, token, f"objects/{object_id}/", params)
    if response.status_code == 404:
        return []
    return [(o["id"], parse_timestamp(o["modified"])) for o in response.json().get("objects", [])]


def versions_of(world: World, token: str, object_id: str) -> list[int]:
    response = _get(world, token, f"objects/{object_id}/versions/", {})
    return [] if response.status_code == 404 else [parse_timestamp(v) for v in response.json().get("versions", [])]


def assert_history(world: World, token: str, obj: list[dict[str, Any]], seen: list[int]) -> None:
    """``token`` sees exactly the versions at positions ``seen`` of ``obj``, on every endpoint."""
    object_id = obj[0]["id"]
    visible = [(object_id, parse_timestamp(obj[i]["modified"])) for i in seen]
    expected = {"first": visible[:1], "last": visible[-1:], None: visible[-1:], "all": visible,
                "first,last": list(dict.fromkeys(visible[:1] + visible[-1:]))}
    for version, wanted in expected.items():
        for endpoint in ("objects", "manifest"):
            assert listing(world, token, endpoint, [object_id], version) == wanted, (token, endpoint, version)
        assert single(world, token, object_id, version) == wanted, (token, "object", version)
    assert versions_of(world, token, object_id) == [version for _, version in visible], token


def test_first_is_the_first_version_the_reader_may_see(world: World) -> None:
    # A threat actor published AMBER+STRICT, then AMBER, then GREEN.
    actor = history(world, "threat-actor", [AMBER_STRICT, AMBER, GREEN], name="Sandworm-like")
    post_each(world, actor)
    assert_history(world, "au", actor, [2])  # GREEN only: its first is the GREEN version
    assert_history(world, "reader", actor, [1, 2])  # up to AMBER: its first is the AMBER version
    assert_history(world, "writer", actor, [0, 1, 2])


def test_a_re_marked_object_keeps_the_last_version_the_reader_may_see(world: World) -> None:
    # An indicator published GREEN and later re-marked AMBER: the GREEN reader keeps the GREEN version.
    indicator = history(world, "indicator", [GREEN, AMBER])
    post_each(world, indicator)
    assert_history(world, "au", indicator, [0])
    assert_history(world, "reader", indicator, [0, 1])
    # It is served where it was added, as if the hidden version did not exist.
    manifest = {parse_timestamp(e["version"]): e["date_added"] for e in world.node.session("writer").get(
        world.node.collection_url() + "manifest/",
        params={"match[id]": indicator[0]["id"], "match[version]": "all"}).json()["objects"]}
    seen = world.node.session("au").get(world.node.collection_url() + "manifest/",
                                        params={"match[id]": indicator[0]["id"]}).json()["objects"]
    first = parse_timestamp(indicator[0]["modified"])
    assert [(parse_timestamp(e["version"]), e["date_added"]) for e in seen] == [(first, manifest[first])]


def test_a_relationship_whose_new_target_is_hidden_keeps_its_earlier_version(world: World) -> None:
    # Visibility that follows a reference, not the markings: both versions are GREEN.
    source = sdo("indicator", world.uk, [GREEN])
    shown = sdo("malware", world.uk, [GREEN])
    hidden = sdo("malware", world.uk, [AMBER])
    world.node.post([source, shown, hidden])
    first = relationship(world.uk, source["id"], shown["id"], [GREEN])
    retargeted = {**first, "target_ref": hidden["id"], "modified": "2026-03-02T00:00:00.000Z"}
    post_each(world, [first, retargeted])
    assert_history(world, "au", [first, retargeted], [0])
    assert_history(world, "reader", [first, retargeted], [0, 1])


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pages_neither_skip_nor_repeat_around_hidden_versions(world: World, limit: int) -> None:
    a, b, c, d, e = (history(world, "indicator", marks) for marks in (
        [GREEN, AMBER], [GREEN, AMBER], [GREEN, GREEN], [AMBER], [GREEN, AMBER, GREEN]))
    # Interleaved, so visible versions sit between hidden ones in date_added order.
    post_each(world, [a[0], b[0], a[1], c[0], b[1], d[0], c[1], e[0], e[1], e[2]])
    ids = [x[0]["id"] for x in (a, b, c, d, e)]

    def pairs(*objects: dict[str, Any]) -> list[Version]:
        return [(o["id"], parse_timestamp(o["modified"])) for o in objects]

    expected = {
        ("au", "last"): pairs(a[0], b[0], c[1], e[2]),
        ("au", None): pairs(a[0], b[0], c[1], e[2]),
        ("au", "first"): pairs(a[0], b[0], c[0], e[0]),
        ("au", "all"): pairs(a[0], b[0], c[0], c[1], e[0], e[2]),
        ("reader", "last"): pairs(a[1], b[1], d[0], c[1], e[2]),
        ("reader", "first"): pairs(a[0], b[0], c[0], d[0], e[0]),
    }
    for (token, version), wanted in expected.items():
        for endpoint in ("objects", "manifest"):
            assert listing(world, token, endpoint, ids, version, limit) == wanted, (token, version, endpoint)
        assert listing(world, token, "objects", ids, version, limit, by_date_header=True) == wanted, (token, version)


def test_delete_of_the_last_version_removes_the_last_one_the_deleter_sees(world: World) -> None:
    # DELETE ?match[version]=last takes the same choice: the writer deletes the stored last version,
    # and the GREEN reader's last then stays the GREEN version it already had.
    indicator = history(world, "indicator", [GREEN, AMBER, GREEN])
    post_each(world, indicator)
    url = world.node.collection_url() + f"objects/{indicator[0]['id']}/"
    assert world.node.session("writer").delete(url, params={"match[version]": "last"}).status_code == 200
    assert_history(world, "au", indicator, [0])
    assert versions_of(world, "writer", indicator[0]["id"]) == [
        parse_timestamp(indicator[0]["modified"]), parse_timestamp(indicator[1]["modified"])
    ]
