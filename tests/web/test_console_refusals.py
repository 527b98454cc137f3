"""What the console answers to requests it cannot serve, over plain HTTP against a real `kizuna serve`:
a 400 page with its reason (in the reader's language) for a position, a number or a search it cannot
read, never a 500; and a keep-alive connection that outlives every refusal."""

from __future__ import annotations

import http.client
import sqlite3

import pytest
import requests

from kizuna.core.node import Node
from tests.conftest import kizuna_json
from tests.web.conftest import Console, add_operator, form_csrf


@pytest.fixture(scope="module")
def operated(console: Console) -> Console:
    add_operator(console)
    return console


def _refused(answer: requests.Response, status: int = 400) -> None:
    assert answer.status_code == status, (answer.url, answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in answer.headers


def test_numbers_the_console_cannot_read_are_a_400_page(operated: Console) -> None:
    session = operated.sign_in("op")
    # "²" passes str.isdigit() and int() refuses it; 2**63 does not fit the store's 64-bit positions.
    for path in ("/console/browse?after=%C2%B2", "/console/browse?after=9223372036854775808",
                 "/console/browse?after=%D9%A3", "/console/audit?before=%C2%B2"):
        _refused(session.get(operated.base + path))
    assert session.get(operated.base + "/console/browse?after=0").status_code == 200
    csrf = form_csrf(session.get(operated.base + "/console/hashes").text)
    answer = session.post(operated.base + "/console/hashes", data={"csrf": csrf, "threshold": "²", "hashes": "ab"})
    _refused(answer, 422)
    assert "The distance must be a whole number from 0 to 255." in answer.text


def test_a_search_with_nul_is_answered_as_the_index_holds_text(console: Console) -> None:
    session = console.sign_in("uk")
    _refused(session.get(console.base + "/console/search", params={"q": "\x00\x00\x00"}))
    found = session.get(console.base + "/console/search", params={"q": "tick\x00et"})
    assert found.status_code == 200 and "Phishing domain of the Games ticket scam" in found.text
    assert session.get(console.base + "/console/search", params={"q": "ticket\x00x"}).status_code == 200


def test_a_page_that_fails_is_the_consoles_500_page_and_the_connection_lives_on(operated: Console) -> None:
    session = operated.sign_in("op")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    connection = http.client.HTTPConnection("127.0.0.1", operated.server.port, timeout=30)
    database = operated.data_dir / "kizuna.db"
    with sqlite3.connect(database) as db:  # a store the page cannot read: the failure no request can cause
        db.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        connection.request("GET", "/console/audit", headers={"Cookie": cookie})
        failed = connection.getresponse()
        body = failed.read().decode()
    finally:
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
    assert failed.status == 500 and failed.getheader("content-type", "").startswith("text/html")
    assert failed.getheader("content-security-policy") and failed.getheader("cache-control") == "no-store"
    assert "Server error" in body and "audit_log" not in body  # the cause goes to the log, not to the reader
    connection.request("GET", "/console/", headers={"Cookie": cookie})  # the same connection
    assert connection.getresponse().status == 200
    connection.close()


def _post_declared(console: Console, path: str, session: requests.Session, content_type: str, size: int) -> str:
    """A POST that declares ``size`` bytes and sends only its first few: the console refuses it by its
    Content-Length, before reading (a client would otherwise upload megabytes to be told no)."""
    connection = http.client.HTTPConnection("127.0.0.1", console.server.port, timeout=30)
    connection.putrequest("POST", path)
    for name, value in (("Cookie", "; ".join(f"{c.name}={c.value}" for c in session.cookies)),
                        ("Content-Type", content_type), ("Content-Length", str(size))):
        connection.putheader(name, value)
    connection.endheaders(b"csrf=")
    answer = connection.getresponse()
    assert answer.status == 400
    text = answer.read().decode()
    connection.close()
    return text


def test_the_japanese_console_says_each_refusal_in_japanese(operated: Console) -> None:
    session = operated.sign_in("op", **{"Accept-Language": "ja"})
    refusals = {
        "'next' is not a cursor": session.get(operated.base + "/console/search?q=ticket&next=garbage"),
        "the form is too large": _post_declared(operated, "/console/tokens", session,
                                                "application/x-www-form-urlencoded", 65 * 1024),
        "kizuna import`": _post_declared(operated, "/console/import", session,
                                         "multipart/form-data; boundary=x", 17 * 1024 * 1024),
    }
    said = {"'next' is not a cursor": "もう一度検索してください", "the form is too large": "フォームが大きすぎます",
            "kizuna import`": "コマンドライン（kizuna import）でインポートしてください"}
    for english, answer in refusals.items():
        text = answer if isinstance(answer, str) else answer.text
        if not isinstance(answer, str):
            _refused(answer)
        assert "不正なリクエスト" in text and said[english] in text and english not in text, text[-600:]
    csrf = form_csrf(session.get(operated.base + "/console/tokens").text)
    form = {"csrf": csrf, "organisation": kizuna_json(operated.data_dir, "status")["identity"], "read": "games"}
    for changed, japanese in (({"organisation": "identity--00000000-0000-4000-8000-000000000000"}, "組織："),
                              ({"read": "no-such-collection"}, "コレクション："),
                              ({"agreement": "no-such-agreement"}, "協定：")):
        answer = session.post(operated.base + "/console/tokens", data={**form, **changed})
        _refused(answer)
        assert japanese in answer.text and "create it with" not in answer.text and "no organisation" not in answer.text


def test_a_revoked_token_is_said_to_be_revoked_instead_of_offered_for_revoking(operated: Console) -> None:
    node = Node.open(operated.data_dir)
    try:
        games = node.find_collection("games").id
        token_id, _ = node.create_token("JPCERT/CC", [games], [], "to be revoked")
        node.revoke_token(token_id)
    finally:
        node.close()
    for language, said in (("en", "is already revoked"), ("ja", "すでに失効しています")):
        session = operated.sign_in("op", **{"Accept-Language": language})
        url = operated.base + f"/console/tokens/{token_id}/revoke"
        confirm = session.get(url)
        assert confirm.status_code == 200 and said in confirm.text
        assert 'type="submit" class="danger"' not in confirm.text
        again = session.post(url, data={"csrf": form_csrf(confirm.text)})
        _refused(again)
        assert said in again.text and "no active token" not in again.text


def test_head_is_answered_as_get(console: Console) -> None:
    for path in ("/console/", "/console/browse?collection=games"):
        head = requests.head(console.base + path, allow_redirects=False, timeout=30)
        get = requests.get(console.base + path, allow_redirects=False, timeout=30)
        assert (head.status_code, head.headers["location"]) == (get.status_code, get.headers["location"]) == (
            303, "/console/sign-in?next=" + path.replace("?", "%3F").replace("=", "%3D"))
    signed = console.sign_in("uk")
    assert signed.head(console.base + "/console/browse", allow_redirects=False).status_code == 200
