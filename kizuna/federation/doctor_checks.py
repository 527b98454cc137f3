"""The checks ``kizuna doctor`` runs, in order, each naming the TAXII 2.1 section it tests.

A check returns what it saw when the peer passes and raises a Finding (doctor.fail / Finding) when
it does not; later checks use what earlier ones stored on the Peer (the API root, a readable
collection, its manifest), and are skipped when that is missing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import orjson

from kizuna.federation.doctor import (
    SKIP,
    TAXII,
    WARN,
    CheckSpec,
    Finding,
    Peer,
    expect,
    fail,
)

_NOT_TAXII = "text/html"


def discovery(peer: Peer) -> str:
    answer = peer.get(peer.url)
    if answer.status in (301, 302, 303, 307, 308):
        # Not a discovery answer at all: most likely the URL given is the server's root, not its discovery.
        target = answer.headers.get("location") or "elsewhere"
        raise fail(f"{peer.url} answered {answer.status}, a redirect to {target}: give the server's discovery "
                   "URL (usually …/taxii2/) or an API root")
    body = answer.taxii_json()
    expect(isinstance(body, dict), "the answer is not a JSON object")
    if "versions" in body and "max_content_length" in body:  # the URL given is an API root
        peer.api_root_url = peer.url
        raise Finding(SKIP, "the URL is an API root; give the server's /taxii2/ URL to check discovery")
    expect(isinstance(body.get("title"), str), "discovery has no title (required)")
    roots = body.get("api_roots", [])
    expect(isinstance(roots, list) and all(isinstance(r, str) for r in roots), "api_roots is not a list of URLs")
    expect(bool(roots), "discovery lists no API root")
    default = body.get("default")
    chosen = default if isinstance(default, str) and default else roots[0]
    peer.discovery_url = peer.url
    peer.api_root_url = urljoin(peer.url, chosen)
    if not peer.api_root_url.endswith("/"):
        peer.api_root_url += "/"
    return f"{len(roots)} API root(s); using {peer.api_root_url}"


def unauthenticated(peer: Peer) -> str:
    if not peer.auth:
        raise Finding(SKIP, "no credentials given, so an anonymous request proves nothing")
    target = peer.api_root_url or peer.url
    answer = peer.get(urljoin(target, "collections/"), credentials=False)
    expect(answer.status in (401, 403, 404), f"collections without credentials answered {answer.status}")
    body = answer.taxii_json(answer.status)
    expect(isinstance(body, dict) and "title" in body, "the refusal is not a TAXII error object")
    return f"refused with {answer.status} and an error object"


def api_root(peer: Peer) -> str:
    if peer.api_root_url is None:
        raise Finding(SKIP, "no API root was found")
    body = peer.get(peer.api_root_url).taxii_json()
    expect(isinstance(body.get("title"), str), "API root has no title (required)")
    versions = body.get("versions")
    expect(isinstance(versions, list) and TAXII in [v.replace(" ", "") for v in versions if isinstance(v, str)],
           f"versions {versions!r} does not list {TAXII}")
    size = body.get("max_content_length")
    expect(isinstance(size, int) and not isinstance(size, bool) and size > 0,
           f"max_content_length {size!r} is not a positive integer")
    peer.max_content_length = size
    return f"TAXII 2.1, max_content_length {size}"


def collections(peer: Peer) -> str:
    if peer.api_root_url is None:
        raise Finding(SKIP, "no API root was found")
    body = peer.get(urljoin(peer.api_root_url, "collections/")).taxii_json()
    listed = body.get("collections", [])
    expect(isinstance(listed, list), "collections is not a list")
    for item in listed:
        missing = {"id", "title", "can_read", "can_write"} - set(item)
        expect(not missing, f"collection {item.get('id')!r} lacks {sorted(missing)}")
    peer.collections = listed
    peer.readable = next((c for c in listed if c.get("can_read") is True), None)
    return f"{len(listed)} collection(s), {sum(1 for c in listed if c.get('can_read'))} readable"


def collection(peer: Peer) -> str:
    chosen = peer.need_collection()
    body = peer.get(peer.collection_url(chosen)).taxii_json()
    expect(body.get("id") == chosen["id"], f"the collection answered id {body.get('id')!r}")
    return f"collection {chosen['id']} ({chosen.get('title')})"


def manifest(peer: Peer) -> str:
    chosen = peer.need_collection()
    records: list[dict[str, object]] = []
    url, params = peer.collection_url(chosen) + "manifest/", {"limit": "100"}
    body = peer.get(url, params).taxii_json()
    records = body.get("objects", [])
    expect(isinstance(records, list), "manifest objects is not a list")
    for record in records:
        missing = {"id", "date_added", "version"} - set(record)
        expect(not missing, f"manifest record {record.get('id')!r} lacks {sorted(missing)}")
    expect(isinstance(body.get("more", False), bool), "more is not a boolean")
    peer.manifest = records
    return f"{len(records)} record(s) on the first page"


def objects(peer: Peer) -> str:
    chosen = peer.need_collection()
    answer = peer.get(peer.collection_url(chosen) + "objects/", {"limit": "10"})
    body = answer.taxii_json()
    found = body.get("objects", [])
    expect(isinstance(found, list), "objects is not a list")
    expect(all(isinstance(o, dict) and "id" in o and "type" in o for o in found), "an object lacks id or type")
    if found:
        missing = [h for h in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last") if h not in answer.headers]
        expect(not missing, f"a page of objects came without {', '.join(missing)}")
    return f"{len(found)} object(s) with the X-TAXII-Date-Added headers"


def paging(peer: Peer) -> str:
    chosen = peer.need_collection()
    records = peer.need_objects()
    if len(records) < 2:
        raise Finding(SKIP, "fewer than two objects: nothing to page through")
    url = peer.collection_url(chosen) + "objects/"
    first = peer.get(url, {"limit": "1"}).taxii_json()
    page = first.get("objects", [])
    expect(len(page) == 1, f"limit=1 gave {len(page)} objects")
    expect(first.get("more") is True, "limit=1 over two or more objects did not say more=true")
    if "next" in first:
        second = peer.get(url, {"limit": "1", "next": str(first["next"])}).taxii_json()
    else:  # paging by added_after alone is allowed (§3.4); follow the header
        last = peer.get(url, {"limit": "1"}).headers.get("X-TAXII-Date-Added-Last")
        expect(last is not None, "more=true without next nor X-TAXII-Date-Added-Last: a client cannot go on")
        second = peer.get(url, {"limit": "1", "added_after": str(last)}).taxii_json()
    following = second.get("objects", [])
    expect(len(following) == 1, f"the second page held {len(following)} objects")
    expect((following[0]["id"], following[0].get("modified")) != (page[0]["id"], page[0].get("modified")),
           "the second page repeats the first")
    return "limit, more and next walk the collection one object at a time"


def match_type(peer: Peer) -> str:
    chosen = peer.need_collection()
    records = peer.need_objects()
    wanted = str(records[0]["id"]).partition("--")[0]
    body = peer.get(peer.collection_url(chosen) + "objects/", {"match[type]": wanted}).taxii_json()
    found = body.get("objects", [])
    expect(bool(found), f"match[type]={wanted} returned nothing though the manifest lists one")
    others = sorted({o.get("type") for o in found} - {wanted})
    expect(not others, f"match[type]={wanted} also returned {others}")
    return f"match[type]={wanted} returned only {wanted}"


def match_id(peer: Peer) -> str:
    chosen = peer.need_collection()
    wanted = str(peer.need_objects()[0]["id"])
    body = peer.get(peer.collection_url(chosen) + "objects/", {"match[id]": wanted}).taxii_json()
    found = body.get("objects", [])
    expect(bool(found) and all(o.get("id") == wanted for o in found), f"match[id]={wanted} returned {len(found)} "
           f"object(s) with ids {sorted({o.get('id') for o in found})[:3]}")
    return f"match[id] returned only {wanted}"


def added_after(peer: Peer) -> str:
    chosen = peer.need_collection()
    records = peer.need_objects()
    newest = max(str(r["date_added"]) for r in records)
    body = peer.get(peer.collection_url(chosen) + "manifest/", {"added_after": newest}).taxii_json()
    later = [r for r in body.get("objects", []) if _instant(str(r.get("date_added"))) <= _instant(newest)]
    expect(not later, f"added_after={newest} returned {len(later)} record(s) added at or before it")
    return f"added_after={newest} excluded everything up to it"


def object_versions(peer: Peer) -> str:
    chosen = peer.need_collection()
    record = peer.need_objects()[0]
    base = peer.collection_url(chosen) + f"objects/{record['id']}/"
    body = peer.get(base, {"match[version]": "all"}).taxii_json()
    found = body.get("objects", [])
    expect(bool(found) and all(o.get("id") == record["id"] for o in found),
           f"GET the object {record['id']} returned {len(found)} object(s)")
    listed = peer.get(base + "versions/").taxii_json()
    versions = listed.get("versions")
    expect(isinstance(versions, list) and bool(versions), "the versions endpoint listed no version")
    expect(any(_instant(str(v)) == _instant(str(record["version"])) for v in versions),
           f"versions {versions[:3]} does not include the manifest's {record['version']}")
    return f"{len(found)} version(s) of {record['id']}; the versions endpoint agrees"


def unknown_object(peer: Peer) -> str:
    chosen = peer.need_collection()
    absent = f"indicator--{uuid.uuid4()}"
    answer = peer.get(peer.collection_url(chosen) + f"objects/{absent}/")
    expect(answer.status == 404, f"GET an object that does not exist answered {answer.status}, expected 404")
    body = answer.taxii_json(404)
    expect(isinstance(body, dict) and isinstance(body.get("title"), str), "the 404 is not a TAXII error object")
    return "404 with a TAXII error object"


def error_body(peer: Peer) -> str:
    if peer.api_root_url is None:
        raise Finding(SKIP, "no API root was found")
    answer = peer.get(urljoin(peer.api_root_url, f"collections/{uuid.uuid4()}/"))
    expect(answer.status == 404, f"an unknown collection answered {answer.status}, expected 404")
    body = answer.taxii_json(404)
    expect(isinstance(body, dict) and isinstance(body.get("title"), str), "the error has no title (required)")
    status = body.get("http_status")
    expect(status is None or str(status) == "404", f"http_status {status!r} disagrees with the HTTP status 404")
    return "unknown collection: 404 with a TAXII error object"


def negotiation(peer: Peer) -> str:
    target = peer.api_root_url or peer.url
    answer = peer.get(target, accept=_NOT_TAXII)
    if answer.status in (401, 403) and not peer.auth:
        # The server asks who is calling before it looks at the media type: nothing to judge without credentials.
        raise Finding(SKIP, f"the API root answered {answer.status} without credentials; give --token to check it")
    expect(answer.status == 406, f"Accept: {_NOT_TAXII} answered {answer.status}, expected 406 Not Acceptable")
    versioned = peer.get(target, accept="application/taxii+json")
    if versioned.status in (401, 403) and not peer.auth:
        raise Finding(SKIP, f"the API root answered {versioned.status} without credentials; give --token to "
                            "check it")
    expect(versioned.status == 200, f"Accept: application/taxii+json (no version) answered {versioned.status}")
    expect(versioned.media_type == TAXII, f"the answer's Content-Type is {versioned.media_type!r}, not {TAXII}")
    return "406 for a media type it cannot serve; TAXII 2.1 for application/taxii+json"


def transport(peer: Peer) -> str:
    if urlsplit(peer.url).scheme != "https":
        raise Finding(WARN, "plain HTTP: tokens and objects cross the network unencrypted; use https:// "
                            "(or a TLS-terminating proxy) before federating")
    if peer.pin:
        return "HTTPS with the pinned certificate" + (" (which the CA file given trusts too)" if peer.ca_file else "")
    return ("HTTPS with a certificate the CA file given trusts" if peer.ca_file
            else "HTTPS with a certificate this machine trusts")


def add_objects(peer: Peer) -> str:
    assert peer.api_root_url is not None and peer.write_collection is not None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    probe = {"type": "note", "spec_version": "2.1", "id": f"note--{uuid.uuid4()}", "created": now, "modified": now,
             "content": "kizuna doctor write probe", "object_refs": [f"identity--{uuid.uuid4()}"]}
    url = urljoin(peer.api_root_url, f"collections/{peer.write_collection}/objects/")
    answer = peer.post(url, orjson.dumps({"objects": [probe]}))
    if answer.status in (403, 404):
        # What TAXII 2.1 (§5.5) answers a token that may not write there, or a collection it does not have:
        # the server did right, and the operator's --write is wrong. The check fails (the write path the
        # operator asked to check was not), naming --write; the verdict on the server does not count it.
        what = "has no such collection" if answer.status == 404 else "refused the token a write there"
        peer.write_refused = (f"--write {peer.write_collection!r}: the server {what} ({answer.status}: "
                              f"{answer.said()}); give a collection the token may write")
        raise fail(peer.write_refused)
    status = answer.taxii_json(202)
    missing = {"id", "status", "total_count", "success_count", "failure_count", "pending_count"} - set(status)
    expect(not missing, f"the status resource lacks {sorted(missing)}")
    again = peer.get(urljoin(peer.api_root_url, f"status/{status['id']}/")).taxii_json()
    expect(again.get("id") == status["id"], "GET the status by its id answered another status")
    if status.get("status") == "complete":
        found = peer.get(url + f"{probe['id']}/").taxii_json().get("objects", [])
        expect(any(o.get("id") == probe["id"] for o in found), "the posted object cannot be read back")
    return f"posted {probe['id']}; status {status.get('status')}"


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"{text!r} is not a TAXII timestamp") from None


CHECKS: list[CheckSpec] = [
    CheckSpec("discovery", "§4.1", "Server discovery", discovery),
    CheckSpec("authentication", "§4.1, §3.6", "Requests without credentials are refused", unauthenticated),
    CheckSpec("api-root", "§4.2", "API root information", api_root),
    CheckSpec("collections", "§5.1", "Collections", collections),
    CheckSpec("collection", "§5.2", "One collection", collection),
    CheckSpec("manifest", "§5.3", "Object manifest", manifest),
    CheckSpec("objects", "§5.4, §3.4.2", "Objects and X-TAXII-Date-Added headers", objects),
    CheckSpec("paging", "§3.4", "Paging with limit, more and next", paging),
    CheckSpec("match-type", "§3.5", "match[type] filter", match_type),
    CheckSpec("match-id", "§3.5", "match[id] filter", match_id),
    CheckSpec("added-after", "§3.4.2", "added_after filter", added_after),
    CheckSpec("versions", "§5.6, §5.8", "An object's versions", object_versions),
    CheckSpec("unknown-object", "§5.6, §3.6", "An absent object is a 404 error object", unknown_object),
    CheckSpec("error-body", "§3.6", "Error messages", error_body),
    CheckSpec("content-negotiation", "§1.6.8", "Content negotiation (Accept)", negotiation),
    CheckSpec("tls", "§1.6.2", "Transport security", transport),
    CheckSpec("add-objects", "§5.5, §4.3", "Add objects and read the status", add_objects, writes=True),
]
