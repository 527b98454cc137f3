"""The Share page in a real browser and over plain HTTP against a real `kizuna serve`: the pattern checked
as it is typed by the ingest's validator, the preview computed by the policy engine, and an indicator
marked AMBER+STRICT that its organisation can open and the other organisation cannot find anywhere."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import kizuna_json
from tests.web.conftest import Console, check_accessibility, form_csrf, shoot, signed_in, untranslated

NAME = "Lookalike ticket domain for the final"
PATTERN = "[domain-name:value = 'final-tickets.example']"


@pytest.fixture(scope="module")
def writable(console: Console) -> Console:
    """The console with a UK token that may also write to the collection."""
    made = kizuna_json(console.data_dir, "tokens", "create", "--org", "NCSC UK", "--read", "games",
                       "--write", "games", "--label", "console writer")
    console.tokens["writer"], console.token_ids["writer"] = made["token"], made["id"]
    return console


def test_an_amber_strict_indicator_shared_in_the_browser_is_absent_for_the_other_organisation(
    writable: Console, browser: Any,
) -> None:
    page = signed_in(browser, writable, "writer", browse=False)
    page.get_by_role("navigation").get_by_role("link", name="Share").click()
    page.wait_for_url(re.compile(r".*/console/share$"))
    page.fill("#sh-name", NAME)
    page.locator("#sh-pattern").press_sequentially("[domain-name:value = ")
    check = page.locator("#sh-pattern-check")
    expect(check).to_contain_text("not a valid STIX pattern")  # the server's answer, drawn by share.js
    page.fill("#sh-pattern", "")
    page.locator("#sh-pattern").press_sequentially(PATTERN)
    expect(check).to_have_text("The pattern is valid.")
    page.select_option("#sh-tlp", "amber+strict")
    page.get_by_role("button", name="Preview who will see it").click()
    page.wait_for_url(re.compile(r".*/console/share$"))
    verdicts = page.locator("ul.verdicts").inner_text()
    assert "JPCERT/CC will not see this" in verdicts
    assert page.locator("#sh-name").input_value() == NAME  # the draft is kept for the real submit
    shoot(page, "share-preview-en")
    check_accessibility(page)
    page.get_by_role("button", name="Share", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/objects/indicator--"))
    assert page.get_by_role("heading", name=NAME).is_visible()
    assert page.locator(".meta .tlp").inner_text() == "TLP:AMBER+STRICT"
    shared_url = page.url
    page.get_by_role("button", name="日本語").click()
    page.goto(writable.base + "/console/share")
    assert page.get_by_role("heading", name="指標を共有").is_visible()
    assert untranslated(page) == []
    shoot(page, "share-ja")
    page.context.close()

    jp = writable.sign_in("jp")
    object_path = shared_url.split(writable.base, 1)[1]
    indicator_id = object_path.split("/console/objects/", 1)[1].split("?", 1)[0]
    hidden = jp.get(writable.base + object_path)
    absent = jp.get(writable.base + "/console/objects/indicator--00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == absent.status_code == 404
    assert NAME not in jp.get(writable.base + "/console/search?q=Lookalike").text
    assert NAME not in jp.get(writable.base + "/console/browse?type=indicator").text
    assert NAME not in jp.get(writable.base + "/console/").text
    uk = writable.sign_in("uk")
    assert NAME in uk.get(writable.base + "/console/search?q=Lookalike").text
    assert indicator_id in uk.get(writable.base + "/console/browse?type=indicator").text


def test_a_releasability_marking_limits_the_preview(writable: Console) -> None:
    session = writable.sign_in("writer")
    csrf = form_csrf(session.get(writable.base + "/console/share").text)
    form = {"csrf": csrf, "name": NAME, "pattern": PATTERN, "tlp": "clear", "collection": "games",
            "action": "preview"}
    reaches = session.post(writable.base + "/console/share", data=form)
    assert "JPCERT/CC will see this" in reaches.text
    limited = session.post(writable.base + "/console/share", data={**form, "rel_to": "gbr"})
    assert "JPCERT/CC will not see this, because it is releasable only to GBR and the partner is JPN" \
        in limited.text.replace("&#39;", "'")


@pytest.mark.parametrize("change,message", [
    ({"pattern": "[foo:bar = 1]"}, "not a valid STIX pattern"),
    ({"name": "  "}, "Give the indicator a name."),
    ({"rel_to": "GBR, XYZ"}, "Not a country code"),
    ({"collection": "no-such-collection"}, "Choose a collection this token may write to."),
    ({"tlp": "purple"}, "Unknown TLP level."),
])
def test_an_impossible_draft_is_refused_with_the_reason_and_nothing_is_stored(
    writable: Console, change: dict[str, str], message: str,
) -> None:
    session = writable.sign_in("writer")
    before = writable.taxii_count("uk")
    csrf = form_csrf(session.get(writable.base + "/console/share").text)
    form = {"csrf": csrf, "name": "Refused draft", "pattern": PATTERN, "tlp": "green", "collection": "games",
            "action": "share", **change}
    answer = session.post(writable.base + "/console/share", data=form)
    assert answer.status_code == 400 and message in answer.text
    assert writable.taxii_count("uk") == before


def test_a_reader_cannot_share_and_a_form_without_csrf_is_refused(writable: Console) -> None:
    reader = writable.sign_in("uk")  # read-only token
    assert "This token may not write to any collection." in reader.get(writable.base + "/console/share").text
    session = writable.sign_in("writer")
    answer = session.post(writable.base + "/console/share", data={"name": NAME, "pattern": PATTERN, "tlp": "clear",
                                                                 "collection": "games", "action": "share"})
    assert answer.status_code == 403


def test_the_pattern_check_is_the_ingest_validator(writable: Console) -> None:
    session = writable.sign_in("writer")
    good = session.get(writable.base + "/console/share/check", params={"pattern": PATTERN}).json()
    bad = session.get(writable.base + "/console/share/check", params={"pattern": "[ipv4-addr:value = "}).json()
    assert good == {"valid": True, "message": "The pattern is valid."}
    assert bad["valid"] is False and "not a valid STIX pattern" in bad["message"]


NOTE_TEXT = "The stealer's panel moved to a new host on the morning of the final."
ABSENT = "malware--00000000-0000-4000-8000-000000000000"


def _post(console: Console, who: str, **fields: str) -> Any:
    session = console.sign_in(who)
    csrf = form_csrf(session.get(console.base + "/console/share").text)
    form = {"csrf": csrf, "tlp": "green", "collection": "games", "action": "share", **fields}
    return session, session.post(console.base + "/console/share", data=form, allow_redirects=False)


def test_a_note_from_the_object_page_is_prefilled_stored_and_hidden_like_any_object(writable: Console) -> None:
    malware = writable.ids["malware"]
    session = writable.sign_in("writer")
    object_page = session.get(f"{writable.base}/console/objects/{malware}?collection=games").text
    link = re.search(r'href="(/console/share\?kind=note[^"]+)"', object_page)
    assert link, "the object page links to a note about it"
    prefilled = session.get(writable.base + link.group(1).replace("&amp;", "&")).text
    assert f">{malware}</textarea>" in prefilled and ">Ticket stealer</a>" in prefilled
    answer = session.post(writable.base + "/console/share", allow_redirects=False, data={
        "csrf": form_csrf(prefilled), "kind": "note", "refs": malware, "description": NOTE_TEXT,
        "tlp": "amber+strict", "collection": "games", "action": "share"})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    note_id = location.split("/console/objects/", 1)[1].split("?", 1)[0]
    stored = session.get(f"{writable.base}/console/objects/{note_id}/stix.json?collection=games").json()
    assert stored["type"] == "note" and stored["content"] == NOTE_TEXT and stored["object_refs"] == [malware]
    assert stored["created_by_ref"] == kizuna_json(writable.data_dir, "status")["identity"]
    jp = writable.sign_in("jp")
    assert jp.get(writable.base + location).status_code == 404
    assert NOTE_TEXT not in jp.get(writable.base + "/console/browse?type=note").text


def test_a_report_and_an_opinion_reference_objects_with_the_same_preview(writable: Console) -> None:
    refs = f"{writable.ids['indicator']}\n{writable.ids['malware']}"
    _, preview = _post(writable, "writer", kind="opinion", refs=writable.ids["indicator"], opinion="agree",
                       tlp="clear", action="preview")
    assert "JPCERT/CC will see this" in preview.text
    session, shared = _post(writable, "writer", kind="report", name="Ticket scam, week one", refs=refs)
    assert shared.status_code == 303, shared.text
    report_id = shared.headers["location"].split("/console/objects/", 1)[1].split("?", 1)[0]
    stored = session.get(f"{writable.base}/console/objects/{report_id}/stix.json?collection=games").json()
    assert stored["object_refs"] == [writable.ids["indicator"], writable.ids["malware"]]
    assert stored["name"] == "Ticket scam, week one" and "published" in stored


@pytest.mark.parametrize("fields,message", [
    ({"kind": "report", "name": " ", "refs": "{malware}"}, "Give the report a name."),
    ({"kind": "note", "refs": "{malware}"}, "Write the note&#39;s text."),
    ({"kind": "opinion", "refs": "{malware}", "opinion": "maybe"}, "Choose an opinion."),
    ({"kind": "opinion", "opinion": "agree"}, "Name at least one object it is about."),
    ({"kind": "note", "description": "x", "refs": ABSENT}, f"No object you can see has this id: {ABSENT}"),
])
def test_an_impossible_report_note_or_opinion_is_refused(
    writable: Console, fields: dict[str, str], message: str,
) -> None:
    before = writable.taxii_count("uk")
    filled = {key: value.format(malware=writable.ids["malware"]) for key, value in fields.items()}
    _, answer = _post(writable, "writer", **filled)
    assert answer.status_code == 400 and message in answer.text
    assert writable.taxii_count("uk") == before


def test_a_note_about_a_hidden_object_is_refused_as_if_it_did_not_exist(writable: Console) -> None:
    made = kizuna_json(writable.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "games",
                       "--write", "games", "--label", "console jp writer")
    writable.tokens["jp-writer"] = made["token"]
    secret = writable.ids["secret"]
    _, hidden = _post(writable, "jp-writer", kind="note", description="x", refs=secret)
    _, absent = _post(writable, "jp-writer", kind="note", description="x", refs=ABSENT)
    assert hidden.status_code == absent.status_code == 400
    assert f"No object you can see has this id: {secret}" in hidden.text
    assert "Operation Quiet Lantern" not in hidden.text


def test_an_opinion_given_from_the_object_page_in_the_browser(writable: Console, browser: Any) -> None:
    page = signed_in(browser, writable, "writer", browse=False)
    page.goto(f"{writable.base}/console/objects/{writable.ids['malware']}?collection=games")
    page.get_by_role("link", name="Give an opinion on it").click()
    page.wait_for_url(re.compile(r".*/console/share\?kind=opinion"))
    assert page.locator("#sh-about").inner_text() == "Ticket stealer"
    page.select_option("#sh-opinion", "strongly-agree")
    page.get_by_role("button", name="Share", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/objects/opinion--"))
    assert "strongly-agree" in page.locator("table.properties").inner_text()
    page.get_by_role("button", name="日本語").click()
    page.goto(f"{writable.base}/console/share?kind=note&refs={writable.ids['malware']}&collection=games")
    assert page.get_by_role("heading", name="ノートを書く").is_visible()
    assert untranslated(page) == []
    shoot(page, "share-note-ja")
    check_accessibility(page)
    page.context.close()
