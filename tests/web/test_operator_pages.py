"""The operator pages (Partners & sync, Agreements, Tokens, Audit, Import) against a real `kizuna serve`:
over plain HTTP, the same facts as the CLI, 404 for everyone who is not an operator, CSRF on every form,
the audit chain's verification and an import report with its rejected lines; in Debian's Chromium, a
token's secret shown exactly once, an upload through the Import form, and axe and the Japanese catalog
on every operator page. One module, so one server serves them all."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.core.node import Node
from kizuna.federation.admin import add_partner
from kizuna.policy.tlp import TlpLevel
from tests.conftest import kizuna, kizuna_json
from tests.web.conftest import Console, add_operator, check_accessibility, form_csrf, shoot, signed_in, untranslated

OPERATOR_PAGES = ("/console/partners", "/console/agreements", "/console/agreements/jp-share", "/console/tokens",
                  "/console/audit", "/console/import")
BROWSER_PAGES = ("partners", "agreements", "agreements/jp-share", "tokens", "audit?verify=1", "import")


@pytest.fixture(scope="module")
def operated(console: Console) -> Console:
    """The console plus: an operator token of the node's organisation, a TAXII partner whose last sync
    failed, and an agreement in two versions (written in-process, as the CLI would, to save start-ups)."""
    data = console.data_dir
    add_operator(console)
    node = Node.open(data)
    try:
        add_partner(node, "jp-node", "http://127.0.0.1:9/main/", ("games=games:push",), organisation="JPCERT/CC")
        node.set_agreement("jp-share", "JPCERT/CC", max_tlp=TlpLevel.GREEN)
        node.set_agreement("jp-share", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    finally:
        node.close()
    assert kizuna(data, "sync", "jp-node", "--json", check=False).returncode == 1  # nothing listens on port 9
    return console


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_only_operators_see_the_operator_pages(operated: Console) -> None:
    operator = operated.sign_in("op")
    for path in OPERATOR_PAGES:
        answer = operator.get(operated.base + path)
        assert answer.status_code == 200, path
    assert 'href="/console/tokens"' in operator.get(operated.base + "/console/").text
    # A token of the node's own organisation without the right, and a partner's token: the 404 page,
    # for the pages and for the forms (with a valid CSRF value), and no link to them.
    for who in ("uk", "jp"):
        visitor = operated.sign_in(who)
        home = visitor.get(operated.base + "/console/")
        assert 'href="/console/tokens"' not in home.text
        csrf = form_csrf(home.text)
        absent = visitor.get(operated.base + "/console/no-such-page").text.replace("/console/no-such-page", "")
        for path in OPERATOR_PAGES:
            answer = visitor.get(operated.base + path)  # the same page as for a path that does not exist
            assert (answer.status_code, answer.text.replace(path, "")) == (404, absent), (who, path)
        for path in ("/console/tokens", f"/console/tokens/{operated.token_ids['jp']}/revoke"):
            answer = visitor.post(operated.base + path, data={"csrf": csrf, "organisation": "x", "read": "games"})
            assert answer.status_code == 404, (who, path)
        upload = visitor.post(operated.base + "/console/import", data={"csrf": csrf, "collection": "games"},
                              files={"file": ("x.txt", b"198.51.100.7\n")})
        assert upload.status_code == 404
    listed = kizuna_json(operated.data_dir, "tokens", "list")["tokens"]
    assert all(t["state"] == "active" for t in listed)


def test_partners_page_shows_what_partners_list_shows(operated: Console) -> None:
    html = operated.sign_in("op").get(operated.base + "/console/partners").text
    [listed] = kizuna_json(operated.data_dir, "partners", "list")["partners"]
    row = _text(html[html.index("<tbody>"):html.index("</tbody>")])
    assert "jp-node" in row and "JPCERT/CC" in row and "TAXII server" in row
    assert listed["api_root_url"] in row
    assert "Failing" in row and "(1 failure)" in row
    assert listed["status"]["last_error"] and _text(listed["status"]["last_error"]) in _text(row).replace("&#39;", "'")
    assert "never" in row  # no success yet
    # Nothing was ever pushed: every version of the pushed collection waits (furniture excluded).
    assert re.search(r"\b\d+\b", row.split("(1 failure)")[1])


def test_agreement_versions_as_policy_shows_them(operated: Console) -> None:
    session = operated.sign_in("op")
    listing = _text(session.get(operated.base + "/console/agreements").text)
    assert "jp-share" in listing and "JPCERT/CC" in listing and "TLP:AMBER" in listing
    shown = kizuna_json(operated.data_dir, "agreements", "show", "jp-share")
    page = session.get(operated.base + "/console/agreements/jp-share").text
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert "Version 2" in page and "Version 1" in page
    newest = page[page.index("Version 2"):page.index("Version 1")]
    assert '<dd class="changed"><span class="tlp tlp-amber">TLP:AMBER</span></dd>' in newest
    assert session.get(operated.base + "/console/agreements/no-such").status_code == 404


def test_a_removed_agreement_leaves_the_list_and_its_page_says_so(operated: Console) -> None:
    node = Node.open(operated.data_dir)
    try:
        node.set_agreement("jp-gone", "JPCERT/CC", max_tlp=TlpLevel.GREEN)
        node.remove_agreement("jp-gone")
    finally:
        node.close()
    for language, said in (("en", "removed: releases nothing"), ("ja", "削除済み：何も開示しない")):
        session = operated.sign_in("op", **{"Accept-Language": language})  # the session keeps the language
        assert "jp-gone" not in session.get(operated.base + "/console/agreements").text
        page = session.get(operated.base + "/console/agreements/jp-gone").text
        newest = page[page.index("<h2"):page.index("</h2>")]
        assert said in newest and "in force" not in newest and "有効" not in newest, newest


def test_an_agreement_page_says_whether_relayed_amber_reaches_the_partner(operated: Console) -> None:
    # The relay rule (docs/federation.md): TLP:AMBER received from partner nodes reaches clients of this node's
    # organisation only, whatever the agreement releases; the page says which the partner is.
    node = Node.open(operated.data_dir)
    try:
        node.set_agreement("jp-amber", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
        home = node.home_organisation_id
    finally:
        node.close()
    said = {"en": "does not reach JPCERT/CC, which is not a client", "ja": "JPCERT/CC に届きません"}
    for language, text in said.items():
        session = operated.sign_in("op", **{"Accept-Language": language})
        page = session.get(operated.base + "/console/agreements/jp-amber").text
        assert text in page and "TLP:AMBER" in page, page
    node = Node.open(operated.data_dir)
    try:
        assert home is not None
        node.set_organisation_groups("JPCERT/CC", client_of=[home])
    finally:
        node.close()
    page = operated.sign_in("op").get(operated.base + "/console/agreements/jp-amber").text
    assert "JPCERT/CC is a client of this node's organisation" in page and "does not reach" not in page
    node = Node.open(operated.data_dir)
    try:
        node.set_organisation_groups("JPCERT/CC", client_of=[])
    finally:
        node.close()


def test_a_token_is_created_with_its_secret_shown_once_and_revoked_only_with_csrf(operated: Console) -> None:
    session = operated.sign_in("op")
    tokens_page = session.get(operated.base + "/console/tokens")
    csrf = form_csrf(tokens_page.text)
    form = {"organisation": kizuna_json(operated.data_dir, "status")["identity"], "read": "games",
            "label": "made in the console", "expires": "30d"}
    assert session.post(operated.base + "/console/tokens", data=form).status_code == 403  # no CSRF value
    refused = session.post(operated.base + "/console/tokens", data={**form, "csrf": csrf, "read": "", "expires": "x"})
    assert refused.status_code == 400 and "The token was not created" in refused.text
    created = session.post(operated.base + "/console/tokens", data={**form, "csrf": csrf})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    secret = re.search(r'value="(kz_[^"]+)"', created.text)
    assert secret
    token_id = secret.group(1)[3:].split("_")[0]
    taxii = {"Accept": "application/taxii+json;version=2.1", "Authorization": f"Bearer {secret.group(1)}"}
    assert requests.get(operated.base + "/main/collections/", headers=taxii, timeout=30).status_code == 200
    listing = session.get(operated.base + "/console/tokens").text
    assert "made in the console" in listing and secret.group(1) not in listing
    # kz_<id>_<secret>: the secret itself may hold "_" (URL-safe base64), so it is everything after the id.
    assert secret.group(1).split("_", 2)[2] not in listing
    confirm = session.get(operated.base + f"/console/tokens/{token_id}/revoke")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    url = operated.base + f"/console/tokens/{token_id}/revoke"
    assert session.post(url, data={"csrf": "forged"}).status_code == 403
    assert requests.get(operated.base + "/main/collections/", headers=taxii, timeout=30).status_code == 200
    done = session.post(url, data={"csrf": form_csrf(confirm.text)}, allow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/console/tokens?revoked={token_id}"
    assert requests.get(operated.base + "/main/collections/", headers=taxii, timeout=30).status_code == 401
    # Audited like the CLI's, under the operator's token.
    # The audit page names the organisation and the collections the grants cover, not internal keys.
    page = _text(session.get(operated.base + "/console/audit").text)
    assert "&#34;grants&#34;:[&#34;r:games&#34;]" in page and "&#34;organisation&#34;:&#34;NCSC UK&#34;" in page
    records = [json.loads(line) for line in kizuna(operated.data_dir, "audit", "export").stdout.splitlines()]
    kinds = {(r["kind"], r["principal"]) for r in records
             if r["body"].get("token") == token_id and r["kind"].startswith("token-")}
    assert kinds == {("token-created", operated.token_ids["op"]), ("token-revoked", operated.token_ids["op"])}


def test_the_audit_page_pages_and_reports_a_broken_chain(operated: Console) -> None:
    node = Node.open(operated.data_dir)  # more than a page of records, written as any command writes them
    try:
        for n in range(60):
            node.audit.record("feed-removed", "admin", {"name": f"marker-{n}"})
    finally:
        node.close()
    session = operated.sign_in("op")
    page = session.get(operated.base + "/console/audit")
    head = int(re.search(r"<td>(\d+)</td>", page.text).group(1))  # type: ignore[union-attr]
    assert head >= 60 and "feed-removed" in page.text and "node administrator (CLI)" in page.text
    older = re.search(r'href="/console/audit\?before=(\d+)"', page.text)
    assert older and int(older.group(1)) == head - 49
    second = session.get(operated.base + f"/console/audit?before={older.group(1)}").text
    assert re.search(r"<td>(\d+)</td>", second).group(1) == str(head - 50)  # type: ignore[union-attr]
    assert session.get(operated.base + "/console/audit?before=abc").status_code == 400
    verified = session.get(operated.base + "/console/audit?verify=1").text
    assert "Verified:" in verified and "every link intact" in verified
    database = operated.data_dir / "kizuna.db"
    with sqlite3.connect(database) as db:
        [(body,)] = db.execute("SELECT body FROM audit_log WHERE seq = 3").fetchall()
        db.execute("UPDATE audit_log SET body = ? WHERE seq = 3", (body.replace("}", ',"x":1}', 1),))
    try:
        broken = session.get(operated.base + "/console/audit?verify=1").text
        assert "Broken at record 3." in broken
        cli = json.loads(kizuna(operated.data_dir, "audit", "verify", "--json", check=False).stdout)
        assert cli["seq"] == 3 and cli["problem"] in broken.replace("&#39;", "'")
        text = kizuna(operated.data_dir, "audit", "verify", check=False)
        assert text.returncode == 1 and text.stderr == "kizuna audit verify: the chain is broken at record 3\n"
    finally:
        with sqlite3.connect(database) as db:
            db.execute("UPDATE audit_log SET body = ? WHERE seq = 3", (body,))
    assert "every link intact" in session.get(operated.base + "/console/audit?verify=1").text


def test_an_ioc_list_upload_reports_its_rejected_lines(operated: Console) -> None:
    session = operated.sign_in("op")
    csrf = form_csrf(session.get(operated.base + "/console/import").text)
    value = f"{uuid.uuid4().hex[:10]}.example"
    listing = f"{value}\n198.51.100.23\nthis is not an indicator\n".encode()
    form = {"collection": kizuna_json(operated.data_dir, "collections", "list")["collections"][0]["id"],
            "tlp": "amber"}
    assert session.post(operated.base + "/console/import", data=form,
                        files={"file": ("iocs.txt", listing)}).status_code == 403  # no CSRF value
    answer = session.post(operated.base + "/console/import", data={**form, "csrf": csrf},
                          files={"file": ("iocs.txt", listing)})
    assert answer.status_code == 200, answer.text
    text = _text(answer.text)
    assert "2 objects read: 2 stored, 0 already stored, 0 refused." in text
    assert "iocs.txt:3" in text and "ioc-text" in text
    assert "Collection games " in text  # by its alias, as `kizuna import` names it, not by its id
    assert form["collection"] not in text
    event = (Path(__file__).parents[1] / "fixtures" / "misp" / "57c4445b-c548-4654-af0b-4be3950d210f.json")
    misp = session.post(operated.base + "/console/import", data={**form, "csrf": csrf},
                        files={"file": ("event.json", event.read_bytes())})
    assert misp.status_code == 200 and "<code>misp</code>" in misp.text
    stored = re.search(r"objects read: (\d+) stored", _text(misp.text))
    assert stored and int(stored.group(1)) > 0
    broken = session.post(operated.base + "/console/import", data={**form, "csrf": csrf},
                          files={"file": ("bundle.json", b'{"type": "bundle", "objects": [\n{"type": ')})
    assert broken.status_code == 422 and "bundle.json:2" in broken.text and "Nothing was imported" in broken.text


def test_a_new_tokens_secret_is_shown_once(operated: Console, browser: Any) -> None:
    page = signed_in(browser, operated, "op", browse=False)
    page.get_by_role("navigation", name="Operator").get_by_role("link", name="Tokens").click()
    page.wait_for_url(re.compile(r".*/console/tokens$"))
    page.select_option("#tk-org", label="JPCERT/CC")
    page.get_by_role("checkbox", name="read").first.check()
    page.fill("#tk-label", "browser-made")
    page.get_by_role("button", name="Create token").click()
    assert page.get_by_role("heading", name="Token created").is_visible()
    secret = page.locator("#secret").input_value()
    assert secret.startswith("kz_")
    taxii = {"Accept": "application/taxii+json;version=2.1", "Authorization": f"Bearer {secret}"}
    assert requests.get(operated.base + "/main/collections/", headers=taxii, timeout=30).status_code == 200
    shoot(page, "token-created-en")
    check_accessibility(page)
    page.get_by_role("link", name="Back to the tokens").click()
    assert page.get_by_role("cell", name=re.compile("browser-made")).is_visible()
    assert secret not in page.content()
    page.go_back()  # the answer to a POST is no-store: going back does not bring the secret again
    assert secret not in page.content()
    page.context.close()


def test_an_upload_through_the_import_form_shows_its_report(operated: Console, browser: Any) -> None:
    page = signed_in(browser, operated, "op", browse=False)
    page.goto(operated.base + "/console/import")
    stamp = "2026-11-20T10:00:00.000Z"
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
                 "modified": stamp, "name": "Uploaded in the browser", "pattern_type": "stix",
                 "pattern": "[ipv4-addr:value = '203.0.113.77']", "valid_from": stamp}
    bundle = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                         "objects": [indicator, {"type": "indicator", "id": "not-an-id"}]}, indent=1)
    page.set_input_files("#im-file", files=[{"name": "upload.json", "mimeType": "application/json",
                                             "buffer": bundle.encode()}])
    page.get_by_role("button", name="Import", exact=True).click()
    summary = page.locator("#import-summary")
    assert summary.inner_text() == "2 objects read: 1 stored, 0 already stored, 1 refused."
    refused = page.locator("section.report ul.items li").first.inner_text()
    assert refused.startswith("line ") and "not-an-id" in refused
    shoot(page, "import-report-en")
    check_accessibility(page)
    page.goto(operated.base + f"/console/objects/{indicator['id']}")
    assert page.get_by_role("heading", name="Uploaded in the browser").is_visible()
    page.context.close()


def test_every_operator_page_is_accessible_and_translated(operated: Console, browser: Any) -> None:
    """axe finds no serious issue on any operator page, in English and in Japanese (the revoke
    confirmation included), and no Japanese page keeps an English string."""
    pages = (*BROWSER_PAGES, f"tokens/{operated.token_ids['jp']}/revoke")
    page = signed_in(browser, operated, "op", browse=False)
    for name in pages:
        page.goto(f"{operated.base}/console/{name}")
        assert page.locator("h1").is_visible()
        check_accessibility(page)
        shoot(page, _shot_name(name, "en"))
    page.get_by_role("button", name="日本語").click()
    for name in pages:
        page.goto(f"{operated.base}/console/{name}")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert untranslated(page) == [], name
        check_accessibility(page)
        shoot(page, _shot_name(name, "ja"))
    page.context.close()


def _shot_name(path: str, language: str) -> str:
    name = re.sub(r"tokens/[^/]+/revoke", "token-revoke", path.split("?")[0])
    return f"operator-{name.replace('/', '-')}-{language}"


def test_a_token_made_and_a_file_imported_in_japanese_are_accessible(operated: Console, browser: Any) -> None:
    """The two pages that answer an operator's form (the new token's secret, the import report), in
    Japanese: axe, no English left, and they work as in English."""
    page = signed_in(browser, operated, "op", locale="ja-JP", browse=False)
    page.goto(operated.base + "/console/tokens")
    assert page.locator("html").get_attribute("lang") == "ja"
    page.select_option("#tk-org", label="JPCERT/CC")
    page.locator("input[type=checkbox][name=read]").first.check()
    page.fill("#tk-label", "browser-made-ja")
    page.locator("form button[type=submit]", has_text="トークンを作成").click()
    assert page.locator("#secret").input_value().startswith("kz_")
    assert untranslated(page) == []
    check_accessibility(page)
    shoot(page, "token-created-ja")
    page.goto(operated.base + "/console/import")
    page.set_input_files("#im-file", files=[{"name": "iocs.csv", "mimeType": "text/csv",
                                             "buffer": b"type,value\ndomain,ja-upload.example\nipv4,999.1.1.1\n"}])
    page.locator("form button[type=submit]", has_text="インポート").click()
    assert "iocs.csv:3" in page.locator("section.report").inner_text()
    assert untranslated(page) == []
    check_accessibility(page)
    shoot(page, "import-report-ja")
    page.context.close()


def test_the_operator_pages_on_postgresql(pg_console: Console) -> None:
    """The same pages on PostgreSQL: partner health, audit paging and verification, token create and an
    import read and write through the PostgreSQL store."""
    add_operator(pg_console, "pg operator")
    node = Node.open(pg_console.data_dir)
    try:
        games = node.find_collection("games").id
        add_partner(node, "pg-partner", "http://127.0.0.1:9/main/", ("games=games:push",))
    finally:
        node.close()
    session = pg_console.sign_in("op")
    partners = _text(session.get(pg_console.base + "/console/partners").text)
    assert "pg-partner" in partners and "Not synced yet" in partners
    assert "every link intact" in session.get(pg_console.base + "/console/audit?verify=1").text
    csrf = form_csrf(session.get(pg_console.base + "/console/import").text)
    answer = session.post(pg_console.base + "/console/import", data={"csrf": csrf, "collection": games},
                          files={"file": ("iocs.csv", b"type,value\ndomain,pg-upload.example\nipv4,999.1.1.1\n")})
    assert answer.status_code == 200, answer.text
    assert "iocs.csv:3" in answer.text and "1 stored" in _text(answer.text)
    assert session.get(pg_console.base + "/console/tokens").status_code == 200
    assert pg_console.sign_in("uk").get(pg_console.base + "/console/tokens").status_code == 404


def test_japanese_pages_name_sync_states_and_audit_kinds_in_japanese(operated: Console) -> None:
    session = operated.sign_in("op", **{"Accept-Language": "ja"})
    board = _text(session.get(operated.base + "/console/").text)
    # The partner whose last sync failed reads as on the Partners page, not as the stored state code.
    assert re.search(r"jp-node .{0,40}失敗中", board), board
    assert " backoff " not in board and " ok " not in board
    node = Node.open(operated.data_dir)  # the newest record, whatever other tests wrote before
    try:
        node.audit.record("partner-removed", "admin", {"name": "gone-node"})
    finally:
        node.close()
    audit = session.get(operated.base + "/console/audit").text
    assert "パートナーの削除<br><code>partner-removed</code>" in audit


def test_every_kind_of_audit_record_kizuna_writes_has_a_name_on_the_page() -> None:
    from kizuna.web.audit_log import KIND_NAMES

    source = Path(__file__).resolve().parents[2] / "kizuna"
    pattern = r'\brecord\(\s*"([a-z-]+)"|AUDIT_KIND: Final = "([a-z-]+)"'
    written = {direct or named for path in source.rglob("*.py")
               for direct, named in re.findall(pattern, path.read_text(encoding="utf-8"))}
    assert written and written <= set(KIND_NAMES), sorted(written - set(KIND_NAMES))


def test_the_token_form_says_what_is_wrong_in_its_own_words_and_language(operated: Console) -> None:
    session = operated.sign_in("op", **{"Accept-Language": "ja"})
    page = session.get(operated.base + "/console/tokens").text
    own = kizuna_json(operated.data_dir, "status")["identity"]
    assert f'<option value="{own}" selected>' in page  # the node's own organisation, not the first by name
    form = {"csrf": form_csrf(page), "organisation": own, "read": "games", "label": "x"}
    cases = [({"read": ""}, "トークンが読み取りまたは書き込みできるコレクションを一つ以上選んでください。"),
             ({"expires": "bogus"}, "有効期限：bogus は期間（90m、12h、30d）でも日付（2027-03-31）でもありません。"),
             ({"expires": "2020-01-01"}, "有効期限：2020-01-01 は未来の日時ではありません。"),
             ({"expires": "9999999d"}, "有効期限：9999999d は今から5年より先です。"),
             # maxlength="200" is a hint a client may ignore; a line break it does not even prevent
             ({"label": "a\nb"}, "ラベル：改行を含まない 200 文字以内にしてください。"),
             ({"label": "x" * 5000}, "ラベル：改行を含まない 200 文字以内にしてください。")]
    before = len(kizuna_json(operated.data_dir, "tokens", "list")["tokens"])
    for change, said in cases:
        refused = session.post(operated.base + "/console/tokens", data={**form, **change})
        assert refused.status_code == 400 and said in refused.text
        assert "--expires" not in refused.text and "--read" not in refused.text
    assert len(kizuna_json(operated.data_dir, "tokens", "list")["tokens"]) == before
    english = operated.sign_in("op")
    refused = english.post(operated.base + "/console/tokens", data={
        **form, "csrf": form_csrf(english.get(operated.base + "/console/tokens").text), "label": "a\nb"})
    assert refused.status_code == 400 and "Label: at most 200 characters, on one line." in refused.text
    assert 'maxlength="200"' in refused.text


def test_an_import_report_and_refusal_are_said_in_japanese(operated: Console) -> None:
    """Rejected lines, warnings and a file that cannot be read, in the reader's language; the file's
    name and lines stay as they are."""
    session = operated.sign_in("op", **{"Accept-Language": "ja"})
    csrf = form_csrf(session.get(operated.base + "/console/import").text)
    form = {"csrf": csrf, "collection": kizuna_json(operated.data_dir, "collections", "list")["collections"][0]["id"]}
    value = f"{uuid.uuid4().hex[:10]}.example"
    listing = f"{value}\nnothing to see here\nSeen 198.51.100.23 in mail\n".encode()
    report = session.post(operated.base + "/console/import", data=form, files={"file": ("bad.txt", listing)})
    assert report.status_code == 200, report.text
    assert "<code>bad.txt:2</code>: IOC が見つかりません" in report.text
    assert re.search(r"自由記述の \d+ 行から IOC を探しました", report.text)
    assert "no IOC recognised" not in report.text and "line(s)" not in report.text
    broken = session.post(operated.base + "/console/import", data=form,
                          files={"file": ("latin.txt", b"caf\xe9.example\n")})
    assert broken.status_code == 422 and "UTF-8 のテキストではありません" in broken.text, broken.text
    empty = session.post(operated.base + "/console/import", data=form, files={"file": ("none.txt", b"nothing\n")})
    assert empty.status_code == 422
    assert "none.txt:1：このファイルには使えるものがありません（拒否された行 1）" in empty.text
    assert "not UTF-8 text" not in broken.text and "latin.txt" in broken.text


def test_the_japanese_tokens_page_fits_a_phone(operated: Console, browser: Any) -> None:
    """At 390 px the tokens table scrolls inside its box and the form wraps: the page itself never scrolls
    sideways."""
    page = signed_in(browser, operated, "op", locale="ja-JP", browse=False)
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(operated.base + "/console/tokens")
    assert page.get_by_role("heading", name="トークン", exact=True).is_visible()
    wide = page.evaluate("""() => [...document.querySelectorAll('main *')]
      .filter(el => !el.closest('.table-wrap') && el.getBoundingClientRect().right > window.innerWidth + 1)
      .map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className)""")
    assert wide == []
    shoot(page, "tokens-ja-390")
    page.context.close()
