"""Console sessions over plain HTTP, on SQLite and PostgreSQL: cookie flags, the stored hash, CSRF on
every form, and a session that ends with its token (revoked or expired) or at its own expiry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kizuna.core.audit import unpack_served
from kizuna.core.node import Node as CoreNode
from kizuna.core.sessions import session_of
from kizuna.store.sessions import SessionRecord
from tests.conftest import BACKENDS, kizuna_json
from tests.web.conftest import Console, form_csrf, running_console


@pytest.fixture(scope="module", params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("sessions"), request.param) as running:
        yield running


def _core(data_dir: Path) -> CoreNode:
    return CoreNode.open(data_dir)


def _session_cookie(session: requests.Session) -> str:
    return next(c.value for c in session.cookies if c.name == "kizuna_session" and c.value)


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(node: Console) -> None:
    for headers, secure in (({}, False), ({"X-Forwarded-Proto": "https"}, True)):
        page = requests.get(node.base + "/console/sign-in", headers=headers)
        # Sent by hand: a client keeps a Secure cookie for https, and this server is plain http.
        pre = {"kizuna_presession": page.cookies["kizuna_presession"]}
        answer = requests.post(node.base + "/console/sign-in", headers=headers, cookies=pre, allow_redirects=False,
                               data={"csrf": form_csrf(page.text), "token": node.tokens["uk"], "next": "/console/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/"
        cookie = next(v for k, v in answer.raw.headers.items() if k.lower() == "set-cookie"
                      and v.startswith("kizuna_session="))
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
        assert ("secure" in flags) is secure


def test_only_a_hash_of_the_session_id_is_stored(node: Console) -> None:
    session = node.sign_in("uk")
    raw = _session_cookie(session)
    core = _core(node.data_dir)
    try:
        stored = core.store.get_session(hashlib.sha256(raw.encode()).hexdigest())
        assert stored is not None and stored.token_id == node.token_ids["uk"]
        assert core.store.get_session(raw) is None
    finally:
        core.close()


def test_an_unknown_token_signs_nobody_in(node: Console) -> None:
    session = requests.Session()
    page = session.get(node.base + "/console/sign-in")
    answer = session.post(node.base + "/console/sign-in", allow_redirects=False,
                          data={"csrf": form_csrf(page.text), "token": "kz_0000000000000000_nope", "next": "/console/"})
    assert answer.status_code == 401 and "not valid" in answer.text
    assert "kizuna_session" not in answer.headers.get("set-cookie", "")
    assert session.get(node.base + "/console/browse", allow_redirects=False).status_code == 303


def test_every_form_without_its_csrf_value_is_refused(node: Console) -> None:
    session = node.sign_in("uk")
    browse = session.get(node.base + "/console/browse")
    assert browse.status_code == 200
    for path, form in (("/console/sign-out", {}), ("/console/language", {"language": "ja"}),
                       ("/console/sign-out", {"csrf": "forged"}), ("/console/language", {"language": "ja",
                                                                                          "csrf": "forged"})):
        refused = session.post(node.base + path, data=form, allow_redirects=False)
        assert refused.status_code == 403, path
        assert "security token" in refused.text
    # Nothing happened: still signed in, still English.
    still = session.get(node.base + "/console/browse", allow_redirects=False)
    assert still.status_code == 200 and 'lang="en"' in still.text
    # Sign-in itself needs the pre-session cookie's value: a form posted from elsewhere has neither.
    stranger = requests.post(node.base + "/console/sign-in", allow_redirects=False,
                             data={"csrf": "anything", "token": node.tokens["uk"]})
    assert stranger.status_code == 403 and "kizuna_session" not in stranger.headers.get("set-cookie", "")
    # With the value, sign-out works and ends the session.
    out = session.post(node.base + "/console/sign-out", data={"csrf": form_csrf(still.text)}, allow_redirects=False)
    assert out.status_code == 303
    assert session.get(node.base + "/console/browse", allow_redirects=False).status_code == 303


def test_revoking_the_token_ends_its_sessions(node: Console) -> None:
    made = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "games")
    node.tokens["short"], node.token_ids["short"] = made["token"], made["id"]
    session = node.sign_in("short")
    raw = _session_cookie(session)
    assert session.get(node.base + "/console/browse", allow_redirects=False).status_code == 200
    kizuna_json(node.data_dir, "tokens", "revoke", made["id"])
    answer = session.get(node.base + "/console/browse", allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")
    core = _core(node.data_dir)
    try:
        assert core.store.get_session(hashlib.sha256(raw.encode()).hexdigest()) is None
    finally:
        core.close()


def test_an_expired_session_or_token_is_no_session(node: Console) -> None:
    core = _core(node.data_dir)
    try:
        # A session past its own expiry (stored as time would have left it).
        core.store.create_session(SessionRecord(hashlib.sha256(b"old").hexdigest(), node.token_ids["uk"], 1, 2,
                                                "csrf", "en"))
        assert session_of(core.store, "old") is None
        assert core.store.get_session(hashlib.sha256(b"old").hexdigest()) is None
        # A live session of a token whose expiry has passed.
        made = kizuna_json(node.data_dir, "tokens", "create", "--org", "NCSC UK", "--read", "games",
                           "--expires", "30d")
        node.tokens["expiring"] = made["token"]
        session = node.sign_in("expiring")
        assert session.get(node.base + "/console/browse", allow_redirects=False).status_code == 200
        with core.store._write() as cur:  # the clock cannot be moved: move the expiry into the past
            cur.execute("UPDATE tokens SET expires_at = ? WHERE id = ?", (1, made["id"]))
        assert session.get(node.base + "/console/browse", allow_redirects=False).status_code == 303
    finally:
        core.close()


def test_console_reads_are_audited_as_egress_of_what_the_token_was_shown(node: Console) -> None:
    session = node.sign_in("jp")
    assert session.get(node.base + "/console/browse").status_code == 200
    assert session.get(node.base + f"/console/objects/{node.ids['indicator']}").status_code == 200
    assert session.get(node.base + f"/console/objects/{node.ids['secret']}").status_code == 404
    core = _core(node.data_dir)
    try:
        records = [json.loads(r.body) for r in core.audit.records()
                   if r.kind == "egress" and r.principal == node.token_ids["jp"]]
    finally:
        core.close()
    by_endpoint: dict[str, set[str]] = {}
    for body in records:
        ids = {stix_id for stix_id, _ in unpack_served(body["served"])}
        by_endpoint.setdefault(body["endpoint"], set()).update(ids)
    assert node.ids["indicator"] in by_endpoint["console-browse"]
    assert node.ids["indicator"] in by_endpoint["object"]
    assert {node.ids["relationship"], node.ids["sighting"]} <= by_endpoint["console-related"]
    assert not any(node.ids["secret"] in ids for ids in by_endpoint.values())
