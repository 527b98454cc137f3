"""A newcomer's path: `kizuna demo` names the console, and its token signs in and clicks through the
shipped demo data in both languages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import kizuna, start_server
from tests.web.conftest import check_accessibility, shoot, untranslated


def test_the_demo_token_opens_a_console_with_the_demo_data(tmp_path: Path, browser: Any) -> None:
    data_dir = tmp_path / "demo"
    printed = kizuna(data_dir, "demo", "--no-serve", "--port", "8123").stdout
    assert "Web console: http://127.0.0.1:8123/console/" in printed
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
        context.close()
    finally:
        server.stop()
