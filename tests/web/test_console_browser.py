"""The console in a real browser (Debian's Chromium through Playwright) against a real `kizuna serve`.

Every page is screenshotted in English and Japanese under test-artifacts/screenshots/, checked for
sideways overflow, for serious accessibility problems (axe-core), and in Japanese for UI text left in
English.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests

from tests.web.conftest import Console, check_accessibility, shoot, signed_in, untranslated

RANDOM_ID = f"threat-actor--{uuid.uuid4()}"


def _main_text(page: Any) -> str:
    return str(page.locator("main").inner_text())


def test_sign_in_lands_on_the_dashboard_and_browse_shows_the_visible_objects(console: Console, browser: Any) -> None:
    page = signed_in(browser, console, browse=False)
    assert page.get_by_role("heading", name="Dashboard", exact=True).is_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Browse").click()
    page.wait_for_url(re.compile(r".*/console/browse$"))
    assert page.get_by_role("heading", name="Browse").is_visible()
    # The count is what the same token receives over TAXII (the node adds the TLP marking definitions).
    assert page.locator("#result-count").inner_text() == f"{console.taxii_count('uk')} objects"
    assert page.get_by_role("link", name="Operation Quiet Lantern").is_visible()
    shoot(page, "browse-en")
    check_accessibility(page)
    page.context.close()


def test_japanese_ui_is_chosen_remembered_and_complete(console: Console, browser: Any) -> None:
    page = signed_in(browser, console)
    page.get_by_role("button", name="日本語").click()
    page.wait_for_url(re.compile(r".*/console/browse$"))
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.get_by_role("heading", name="閲覧").is_visible()
    assert page.get_by_role("button", name="サインアウト").is_visible()
    assert untranslated(page) == []
    shoot(page, "browse-ja")
    check_accessibility(page)
    # Remembered: a later page in the same session is Japanese without asking again.
    page.goto(console.base + f"/console/objects/{console.ids['indicator']}")
    assert page.get_by_role("heading", name="バージョン (3)").is_visible()
    assert untranslated(page) == []
    shoot(page, "object-ja")
    check_accessibility(page)
    page.goto(console.base + f"/console/objects/{RANDOM_ID}")
    assert page.get_by_role("heading", name="見つかりません").is_visible()
    assert untranslated(page) == []
    shoot(page, "not-found-ja")
    page.get_by_role("button", name="サインアウト").click()
    page.wait_for_url(re.compile(r".*/console/sign-in$"))
    assert page.get_by_role("heading", name="サインイン").is_visible()  # the cookie keeps the language
    assert untranslated(page) == []
    shoot(page, "sign-in-ja")
    page.context.close()


def test_accept_language_chooses_the_first_language(console: Console, browser: Any) -> None:
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    page.goto(console.base + "/")
    assert page.url.endswith("/console/sign-in?next=/console/")
    assert page.get_by_role("heading", name="サインイン").is_visible()
    context.close()
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.goto(console.base + "/console/sign-in")
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shoot(page, "sign-in-en")
    check_accessibility(page)
    context.close()


def test_object_page_shows_properties_markings_versions_relationships_and_sightings(
    console: Console, browser: Any
) -> None:
    page = signed_in(browser, console)
    page.get_by_role("link", name="Phishing domain of the Games ticket scam").click()
    page.wait_for_url(re.compile(r".*/console/objects/indicator--"))
    main = page.locator("main")
    assert main.locator(".meta .tlp").inner_text() == "TLP:CLEAR"
    description = main.locator("table.properties tr", has=page.locator("th code", has_text=re.compile("^description$")))
    assert "revision 2" in description.inner_text()
    assert description.locator(".tlp").inner_text() == "TLP:RED"  # the granular marking, on its property
    assert page.get_by_role("heading", name="Versions (3)").is_visible()
    page.locator("details summary").first.click()
    diff = page.locator("table.diff").first
    assert "labels" in diff.inner_text() and "revision 1" in diff.inner_text()
    relationships = page.locator("ul.relationships").inner_text()
    assert "indicates" in relationships and "Ticket stealer" in relationships
    assert "NCSC UK" in page.locator("table.sightings").inner_text()
    assert '"pattern_type": "stix"' in page.locator("pre.json").inner_text()
    shoot(page, "object-en")
    check_accessibility(page)
    link = page.get_by_role("link", name="Download STIX JSON").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    download = requests.get(console.base + link, cookies=cookies, timeout=30)
    assert download.headers["content-type"].startswith("application/stix+json")
    assert download.json()["id"] == console.ids["indicator"] and "labels" in download.json()
    page.context.close()


def test_browse_filters_and_pages_work_without_javascript(console: Console, browser: Any) -> None:
    page = signed_in(browser, console, javascript=False)
    page.select_option("#f-type", "indicator")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*type=indicator"))
    assert "1 object" in page.locator("#result-count").inner_text()
    page.get_by_role("link", name="Phishing domain of the Games ticket scam").click()
    page.wait_for_url(re.compile(r".*/console/objects/indicator--"))
    assert page.get_by_role("heading", name="Phishing domain of the Games ticket scam").is_visible()
    page.goto(console.base + "/console/browse?tlp=amber%2Bstrict")
    assert "1 object" in page.locator("#result-count").inner_text()
    shoot(page, "browse-filtered-nojs-en")
    page.context.close()


def test_every_response_carries_a_strict_content_security_policy(console: Console, browser: Any) -> None:
    page = signed_in(browser, console)
    for path in ("/console/", f"/console/objects/{console.ids['malware']}", "/console/static/console.css",
                 "/console/no-such-page"):
        response = page.goto(console.base + path)
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    # No inline script or style attribute in the served markup, which the CSP would have to allow. (Styles
    # that the graph's script sets through the CSSOM afterwards need no such allowance, so the check reads
    # the HTML as served, not the live page.)
    served = page.goto(console.base + f"/console/objects/{console.ids['indicator']}")
    markup = served.text()
    assert "<main" in markup
    assert re.search(r"\sstyle\s*=", markup) is None
    assert re.search(r"<script(?![^>]*\ssrc=)[^>]*>", markup) is None
    page.context.close()


def test_an_amber_strict_object_is_absent_from_every_page_of_the_other_organisation(
    console: Console, browser: Any
) -> None:
    uk = signed_in(browser, console, "uk")
    uk.goto(console.base + f"/console/objects/{console.ids['secret']}")
    assert uk.get_by_role("heading", name="Operation Quiet Lantern").is_visible()
    uk.context.close()

    jp = signed_in(browser, console, "jp")
    assert "Operation Quiet Lantern" not in _main_text(jp)
    assert jp.locator("#result-count").inner_text() == f"{console.taxii_count('jp')} objects"
    assert console.taxii_count("jp") == console.taxii_count("uk") - 1
    options = jp.locator("#f-type option").all_inner_texts()
    assert not any("Threat actor" in option for option in options)
    assert "TLP:AMBER+STRICT (0)" in jp.locator("#f-tlp").inner_text()
    jp.goto(console.base + "/console/browse?tlp=amber%2Bstrict")
    assert "0 objects" in jp.locator("#result-count").inner_text()
    hidden = jp.goto(console.base + f"/console/objects/{console.ids['secret']}")
    hidden_text = _main_text(jp)
    absent = jp.goto(console.base + f"/console/objects/{RANDOM_ID}")
    assert hidden.status == absent.status == 404
    assert hidden_text == _main_text(jp)
    download = jp.goto(console.base + f"/console/objects/{console.ids['secret']}/stix.json")
    assert download.status == 404 and "Operation Quiet Lantern" not in _main_text(jp)
    shoot(jp, "not-found-en")
    check_accessibility(jp)
    jp.context.close()


def test_on_postgresql_the_console_shows_each_organisation_what_it_may_see(pg_console: Console, browser: Any) -> None:
    uk = signed_in(browser, pg_console, "uk")
    assert uk.locator("#result-count").inner_text() == f"{pg_console.taxii_count('uk')} objects"
    uk.goto(pg_console.base + f"/console/objects/{pg_console.ids['indicator']}")
    assert uk.get_by_role("heading", name="Versions (3)").is_visible()
    uk.context.close()
    jp = signed_in(browser, pg_console, "jp")
    assert jp.locator("#result-count").inner_text() == f"{pg_console.taxii_count('jp')} objects"
    assert "Operation Quiet Lantern" not in _main_text(jp)
    assert jp.goto(pg_console.base + f"/console/objects/{pg_console.ids['secret']}").status == 404
    jp.context.close()


def test_a_console_page_names_its_own_icon_and_nothing_asks_for_favicon_ico(console: Console, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    icons: list[Any] = []
    page.on("response", lambda response: icons.append(response) if "favicon" in response.url else None)
    page.goto(console.base + "/console/sign-in")
    page.wait_for_load_state("networkidle")
    assert not [url for url in asked if url.endswith(("/favicon.ico", "/favicon.ico/"))], asked
    assert [(r.url, r.status) for r in icons] == [(console.base + "/console/static/favicon.svg", 200)]
    context.close()
    # Asked by hand (an old bookmark, a crawler): absent, with no redirect to the TAXII root and no 401.
    answer = requests.get(console.base + "/favicon.ico", allow_redirects=False, timeout=30)
    assert answer.status_code == 404 and "location" not in answer.headers
    assert "www-authenticate" not in answer.headers
