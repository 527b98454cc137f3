"""The best-practice library against a real `kizuna serve` loaded with the demo's library items: grouped
by topic, in the reader's language through `language-content`, saying when a translation is missing,
and without the AMBER+STRICT item for the organisation not entitled to it."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna
from tests.web.conftest import AMBER_STRICT, Console, check_accessibility, shoot, signed_in, untranslated

SECRET_TITLE = "Protective security plan for the closing ceremony"


@pytest.fixture(scope="module")
def shelved(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Console:
    """The console with the demo library imported, and one AMBER+STRICT library report of its own."""
    library = Path(str(resources.files("kizuna.demo").joinpath("library.json")))
    kizuna(console.data_dir, "import", str(library), "--collection", "games", "--quiet")
    stamp = "2026-11-03T08:00:00.000Z"
    secret = {"type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}", "created": stamp,
              "modified": stamp, "published": stamp, "name": SECRET_TITLE, "report_types": ["threat-report"],
              "object_refs": [console.ids["malware"]], "labels": ["topic:counter-terrorism"],
              "object_marking_refs": [AMBER_STRICT]}
    bundle = Path(tmp_path_factory.mktemp("library")) / "secret.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [secret]}))
    kizuna(console.data_dir, "import", str(bundle), "--collection", "games", "--quiet")
    return console


def test_the_library_groups_by_topic_in_the_readers_language(shelved: Console) -> None:
    english = shelved.sign_in("uk", **{"Accept-Language": "en-GB"}).get(shelved.base + "/console/library").text
    for heading in ("Cyber security", "Counter-terrorism", "Aviation security", "Mass events"):
        assert f">{heading}</h2>" in english
    assert "Check short-term contractors&#39; airside passes" in english
    assert SECRET_TITLE in english
    assert "Not yet translated" not in english  # every demo item is written in English

    japanese = shelved.sign_in("uk", **{"Accept-Language": "ja"}).get(shelved.base + "/console/library").text
    assert "短期委託業者の制限区域パスを発行機関に照会する" in japanese  # from its language-content
    assert "Check short-term contractors" not in japanese
    # The marathon note has no Japanese text: shown in English, and the page says so.
    assert "Keep one shared incident log across agencies" in japanese
    assert japanese.count("日本語訳はまだありません") == 2  # the note and the untranslated report
    assert "サイバーセキュリティ" in japanese

    other = shelved.sign_in("jp", **{"Accept-Language": "en-GB"}).get(shelved.base + "/console/library").text
    assert SECRET_TITLE not in other
    assert "Lookalike ticket portals" in other


def test_the_library_page_in_japanese_in_the_browser(shelved: Console, browser: Any) -> None:
    page = signed_in(browser, shelved, "jp", locale="ja-JP", browse=False)
    page.get_by_role("navigation", name="メイン").get_by_role("link", name="ライブラリ").click()
    assert page.get_by_role("heading", name="ライブラリ", level=1).is_visible()
    assert page.locator("#topic-aviation-security li").count() == 1
    assert page.locator("ul.library a[lang=ja]").count() == 5
    assert untranslated(page) == []
    shoot(page, "library-ja")
    check_accessibility(page)
    page.context.close()
