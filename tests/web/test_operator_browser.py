"""The operator pages in Debian's Chromium: a token's secret shown exactly once, an upload through the
Import form, and axe and the Japanese catalog on every operator page."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import requests

from tests.conftest import kizuna_json
from tests.web.conftest import Console, check_accessibility, shoot, signed_in, untranslated

PAGES = ("partners", "agreements", "agreements/jp-share", "tokens", "audit?verify=1", "import")


@pytest.fixture(scope="module")
def operated(console: Console) -> Console:
    data = console.data_dir
    made = kizuna_json(data, "tokens", "create", "--org", "NCSC UK", "--read", "games", "--write", "games",
                       "--label", "operator desk")
    kizuna_json(data, "tokens", "operator", made["id"])
    console.tokens["op"], console.token_ids["op"] = made["token"], made["id"]
    kizuna_json(data, "partners", "add", "jp-node", "--url", "http://127.0.0.1:9/main/", "--map", "games=games:push")
    kizuna_json(data, "agreements", "set", "jp-share", "--partner", "JPCERT/CC", "--max-tlp", "green")
    return console


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
    page = signed_in(browser, operated, "op", browse=False)
    for name in PAGES:
        page.goto(f"{operated.base}/console/{name}")
        assert page.locator("h1").is_visible()
        check_accessibility(page)
    page.get_by_role("button", name="日本語").click()
    for name in PAGES:
        page.goto(f"{operated.base}/console/{name}")
        assert untranslated(page) == [], name
        check_accessibility(page)
        shoot(page, "operator-" + name.split("?")[0].replace("/", "-") + "-ja")
    page.context.close()
