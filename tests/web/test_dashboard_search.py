"""The dashboard (the console's home) and Search, in a real browser and over plain HTTP, against a real
`kizuna serve`: what each organisation sees, Japanese search, and the AMBER+STRICT object that one
organisation may find and the other may not, not even as a count."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.conftest import kizuna
from tests.web.conftest import Console, check_accessibility, shoot, signed_in, untranslated

CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
JAPANESE_NAME = "偽チケット販売サイトの指標"
JAPANESE_REPORT = "大会期間中のチケット詐欺"


@pytest.fixture(scope="module")
def searchable(console: Console) -> Console:
    """The console's objects plus a report and an indicator written in Japanese."""
    uk = json.loads(kizuna(console.data_dir, "status", "--json").stdout)["identity"]
    stamp = "2026-03-01T09:00:00.000Z"
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
                 "modified": stamp, "created_by_ref": uk, "name": JAPANESE_NAME,
                 "description": "大会期間中に確認された偽のチケット販売サイト。", "pattern_type": "stix",
                 "pattern": "[domain-name:value = 'fake-tickets.example']", "valid_from": stamp,
                 "object_marking_refs": [CLEAR]}
    report = {"type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}", "created": stamp,
              "modified": stamp, "created_by_ref": uk, "name": "Ticket fraud during the Games",
              "published": stamp, "object_refs": [indicator["id"]], "object_marking_refs": [CLEAR]}
    # The report's Japanese name, as a STIX language-content object (the dashboard shows it to Japanese readers).
    translation = {"type": "language-content", "spec_version": "2.1", "id": f"language-content--{uuid.uuid4()}",
                   "created": stamp, "modified": stamp, "created_by_ref": uk, "object_ref": report["id"],
                   "object_modified": stamp, "contents": {"ja": {"name": JAPANESE_REPORT}},
                   "object_marking_refs": [CLEAR]}
    bundle = console.data_dir.parent / "japanese.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [indicator, report, translation]}))
    kizuna(console.data_dir, "import", str(bundle), "--collection", "games", "--quiet")
    console.ids["japanese"], console.ids["report"] = indicator["id"], report["id"]
    return console


def _main(page: Any) -> str:
    return str(page.locator("main").inner_text())


def test_the_dashboard_shows_the_days_the_newest_objects_in_both_languages(searchable: Console, browser: Any) -> None:
    page = signed_in(browser, searchable, browse=False)
    assert page.get_by_role("heading", name="Dashboard", exact=True).is_visible()
    received = page.locator("section[aria-labelledby=received-title]")
    assert received.locator("svg rect").count() >= 1  # at least one day has objects
    received.locator("summary").click()
    total = sum(int(cell.replace(",", "")) for cell in received.locator("tbody tr td:last-child").all_inner_texts())
    # The same numbers `kizuna dashboard` gives for the same token (core/dashboard.py counts both).
    counted = json.loads(kizuna(searchable.data_dir, "dashboard", "--as-token-id", searchable.token_ids["uk"],
                                "--json").stdout)
    assert total == sum(day["objects"] for day in counted["received"]) > 0
    assert page.get_by_role("link", name="Ticket fraud during the Games").is_visible()
    assert page.get_by_role("link", name=JAPANESE_NAME).is_visible()
    assert page.evaluate("document.querySelectorAll('[style], script:not([src])').length") == 0
    shoot(page, "dashboard-en")
    check_accessibility(page)
    page.get_by_role("button", name="日本語").click()
    page.wait_for_url(re.compile(r".*/console/$"))
    assert page.get_by_role("heading", name="ダッシュボード", exact=True).is_visible()
    assert page.get_by_role("heading", name="最新のレポート").is_visible()
    # The report under its Japanese name, which it had only in English before.
    assert page.get_by_role("link", name=JAPANESE_REPORT).is_visible()
    assert page.get_by_role("link", name="Ticket fraud during the Games").count() == 0
    assert untranslated(page) == []
    shoot(page, "dashboard-ja")
    check_accessibility(page)
    page.context.close()


def test_a_japanese_search_finds_the_japanese_object(searchable: Console, browser: Any) -> None:
    page = signed_in(browser, searchable, locale="ja-JP")
    page.get_by_role("button", name="日本語").click()
    page.get_by_role("navigation").get_by_role("link", name="検索").click()
    page.wait_for_url(re.compile(r".*/console/search$"))
    page.fill("#s-q", "偽チケット")
    page.locator("form[role=search] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/console/search\?q="))
    assert page.locator("#result-count").inner_text() == "1 件の結果"
    page.get_by_role("link", name=JAPANESE_NAME).click()
    page.wait_for_url(re.compile(r".*/console/objects/indicator--"))
    assert page.get_by_role("heading", name=JAPANESE_NAME).is_visible()
    page.go_back()
    assert untranslated(page) == []
    shoot(page, "search-ja")
    check_accessibility(page)
    page.context.close()


def test_search_in_english_with_filters_works_without_javascript(searchable: Console, browser: Any) -> None:
    page = signed_in(browser, searchable, javascript=False)
    page.get_by_role("navigation").get_by_role("link", name="Search").click()
    page.fill("#s-q", "ticket")
    page.locator("form[role=search] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/console/search\?q=ticket"))
    found = page.locator("ol.hits").inner_text()
    assert "Phishing domain of the Games ticket scam" in found and "Ticket fraud during the Games" in found
    page.select_option("#s-type", "report")
    page.locator("form[role=search] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*type=report"))
    assert page.locator("#result-count").inner_text() == "1 result"
    assert page.locator("ol.hits .tlp").inner_text() == "TLP:CLEAR"
    page.context.close()
    page = signed_in(browser, searchable)  # screenshots and axe need a page that runs scripts
    page.goto(searchable.base + "/console/search?q=ticket")
    shoot(page, "search-en")
    check_accessibility(page)
    page.context.close()


def test_the_amber_strict_object_is_found_by_its_organisation_only(searchable: Console) -> None:
    uk, jp = searchable.sign_in("uk"), searchable.sign_in("jp")
    assert "Operation Quiet Lantern" in uk.get(searchable.base + "/console/search?q=Lantern").text
    hidden = jp.get(searchable.base + "/console/search?q=Lantern")
    absent = jp.get(searchable.base + "/console/search?q=Lanterm")
    assert hidden.status_code == absent.status_code == 200
    assert "Operation Quiet Lantern" not in hidden.text
    count = re.compile(r'id="result-count">\s*(.*?)\s*<', re.S)
    assert count.search(hidden.text).group(1) == count.search(absent.text).group(1) == "0 results"  # type: ignore[union-attr]
    assert "Operation Quiet Lantern" not in jp.get(searchable.base + "/console/").text


@pytest.mark.parametrize("query,status,message", [
    ("q=a", 400, "This search cannot be run"),
    ("q=ticket&type=Not+A+Type", 400, "Unknown object type."),
    ("q=ticket&tlp=purple", 400, "Unknown TLP level."),
    ("q=ticket&since=yesterday", 400, "The date must be written as YYYY-MM-DD."),
    ("q=ticket&collection=no-such-collection", 404, "Not found"),
])
def test_bad_search_input_is_a_page_that_says_why(searchable: Console, query: str, status: int, message: str) -> None:
    answer = searchable.sign_in("uk").get(searchable.base + "/console/search?" + query)
    assert answer.status_code == status and message in answer.text and "Traceback" not in answer.text


def test_on_postgresql_dashboard_and_search_show_each_organisation_its_own_view(pg_console: Console) -> None:
    uk, jp = pg_console.sign_in("uk"), pg_console.sign_in("jp")
    count = re.compile(r'id="result-count">\s*(.*?)\s*<', re.S)
    found = uk.get(pg_console.base + "/console/search?q=Lantern")
    assert "Operation Quiet Lantern" in found.text and count.search(found.text).group(1) == "1 result"  # type: ignore[union-attr]
    hidden = jp.get(pg_console.base + "/console/search?q=Lantern")
    assert "Operation Quiet Lantern" not in hidden.text and count.search(hidden.text).group(1) == "0 results"  # type: ignore[union-attr]
    for session in (uk, jp):
        home = session.get(pg_console.base + "/console/")
        assert home.status_code == 200 and "Phishing domain of the Games ticket scam" in home.text
        assert "Operation Quiet Lantern" not in home.text
