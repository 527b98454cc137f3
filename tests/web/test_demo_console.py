"""A newcomer's path: `kizuna demo` names the console, and its token signs in and clicks through the
shipped demo data in both languages."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

from tests.conftest import kizuna, kizuna_json, start_server
from tests.web.conftest import check_accessibility, shoot, untranslated


def test_the_demo_token_opens_a_console_with_the_demo_data(tmp_path: Path, browser: Any) -> None:
    data_dir = tmp_path / "demo"
    printed = kizuna(data_dir, "demo", "--no-serve", "--port", "8123").stdout
    assert "Web console: http://127.0.0.1:8123/console/" in printed
    assert f"Not served: start it with `kizuna --data {data_dir} serve --host 127.0.0.1 --port 8123`" in printed
    token = re.search(r"token \(shown once\): (\S+)", printed)
    assert token
    server = start_server(data_dir, sync=False)
    try:
        context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(server.base + "/")
        page.fill("#token", token.group(1))
        page.locator("form.sign-in button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/console/$"))
        page.goto(server.base + "/console/browse")
        page.select_option("#f-collection", "attack-ics")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r".*collection=attack-ics"))
        page.select_option("#f-type", "malware")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r".*type=malware"))
        assert re.fullmatch(r"\d+ objects", page.locator("#result-count").inner_text())
        shoot(page, "demo-browse-en")
        page.locator("table.objects td.name a").first.click()
        page.wait_for_url(re.compile(r".*/console/objects/malware--"))
        assert page.locator("ul.relationships li").count() > 0  # ATT&CK links malware to techniques
        shoot(page, "demo-object-en")
        check_accessibility(page)
        page.get_by_role("button", name="日本語").click()
        page.wait_for_url(re.compile(r".*/console/objects/malware--"))
        assert page.get_by_role("heading", name=re.compile(r"^関係 \(\d+\)$")).is_visible()
        assert untranslated(page) == []
        shoot(page, "demo-object-ja")
        page.goto(server.base + "/console/browse?collection=attack-ics")
        assert untranslated(page) == []
        shoot(page, "demo-browse-ja")
        page.goto(server.base + "/console/library")  # the demo's library items, in Japanese
        assert page.locator("ul.library a[lang=ja]").count() == 5
        assert page.locator(".missing-translation").count() == 1
        assert untranslated(page) == []
        # The README's search example is what the demo node finds.
        example = re.search(r'`(\S+)` finds "([^"]+)"', (Path(__file__).parents[2] / "README.md").read_text())
        assert example
        page.goto(server.base + "/console/search?q=" + urllib.parse.quote(example.group(1)))
        assert example.group(2) in page.locator("main").inner_text()
        # A statement marking reads as what it says (its id on hover), not as its id.
        page.goto(server.base + "/console/objects/indicator--33fe3b22-0201-47cf-85d0-97c02164528d"
                                "?collection=oasis-examples")
        statement = page.locator("p.meta span.marking")
        assert statement.inner_text() == "Copyright (c) Stark Industries 2017."
        assert statement.get_attribute("title") == "marking-definition--d81f86b9-975b-4c0b-875e-810c5ad45a4f"
        context.close()
    finally:
        server.stop()


def test_the_games_demo_opens_an_operation_in_the_console(tmp_path: Path, browser: Any) -> None:
    """`kizuna demo --games`: one command, then the operation's board in the console, in both languages."""
    data_dir = tmp_path / "games"
    first = kizuna_json(data_dir, "demo", "--games", "--no-serve", "--port", "8124")
    again = kizuna_json(data_dir, "demo", "--games", "--no-serve", "--port", "8124")  # reuses, adds nothing
    played = first["scenario"]
    assert played["console_url"] == "http://127.0.0.1:8124/console/operations/games-2027"
    assert (played["incidents"], played["alerts"]) == (3, again["scenario"]["alerts"]) and played["alerts"] >= 5
    rules = {a["rule"] for a in kizuna_json(data_dir, "ops", "alerts", "games-2027")["alerts"]}
    assert rules == {"lookalike", "containment", "relationship"}
    exported = json.loads(kizuna(data_dir, "export", "--collection", "games-2027-incidents").stdout)["objects"]
    translated = [o for o in exported if o["type"] == "language-content"]
    assert len(translated) == 1 and "シフトレポート" in translated[0]["contents"]["ja"]["name"]
    server = start_server(data_dir, sync=False)
    try:
        context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(server.base + "/")
        page.fill("#token", again["token"])
        page.locator("form.sign-in button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/console/$"))
        page.goto(server.base + "/console/operations/games-2027")
        assert page.locator("table.incidents tbody tr").count() == 3
        assert page.locator("table.alerts tbody tr").count() == played["alerts"]
        assert untranslated(page) == []
        check_accessibility(page)
        shoot(page, "demo-games-operation-ja")
        page.get_by_role("link", name=re.compile("^シフトレポート: Games 2027")).click()  # its Japanese name
        page.wait_for_url(re.compile(r".*/console/objects/report--"))
        assert page.get_by_role("heading", name=re.compile("^Shift report: Games 2027")).is_visible()
        context.close()
    finally:
        server.stop()
