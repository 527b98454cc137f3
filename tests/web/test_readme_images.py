"""The README's pictures of the operator pages, taken from the demo node a newcomer gets.

`kizuna demo` builds the node; a partner node (whose address does not answer, so its health shows a
failed sync), an agreement in two versions and a partner's token are added with the CLI, as an operator
would. The demo's token signs in and opens each operator page in English and in Japanese: each page must
show what the CLI configured, pass axe and, in Japanese, keep no English string. The window-sized pictures
are saved under test-artifacts/screenshots/; with ``KIZUNA_README_IMAGES=docs/images`` also there, which
is how the README's images are refreshed:

    KIZUNA_README_IMAGES=docs/images python -m pytest tests/web/test_readme_images.py -p no:randomly
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, kizuna, kizuna_json, start_server
from tests.web.conftest import SCREENSHOTS, check_accessibility, shoot, untranslated

#: page path under /console/ -> (picture name, text the page must show)
PAGES = {
    "partners": ("partners", "jpcert-node"),
    "agreements/jp-share": ("agreement", "jp-share"),
    "tokens": ("tokens", "JPCERT/CC analysts"),
    "audit?verify=1": ("audit", "token-created"),
    "import": ("import", "ATT&CK"),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data = tmp_path_factory.mktemp("readme") / "demo-node"
    printed = kizuna(data, "demo", "--no-serve", "--port", "8124").stdout
    token = re.search(r"token \(shown once\): (\S+)", printed)
    assert token, printed
    kizuna_json(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    kizuna_json(data, "partners", "add", "jpcert-node", "--url", "http://127.0.0.1:9/main/",
                "--map", "attack-ics=shared:push", "--org", "JPCERT/CC")
    for ceiling in ("green", "amber"):
        kizuna_json(data, "agreements", "set", "jp-share", "--partner", "JPCERT/CC", "--collections", "*",
                    "--producers", "*", "--max-tlp", ceiling)
    kizuna_json(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "attack-ics", "--agreement", "jp-share",
                "--label", "JPCERT/CC analysts")
    assert kizuna(data, "sync", "jpcert-node", "--json", check=False).returncode == 1  # nothing listens on port 9
    server = start_server(data, sync=False)
    try:
        yield server, token.group(1)
    finally:
        server.stop()


def _picture(page: Any, name: str) -> None:
    """The window as the reader sees it (the README shows the top of each page), and the full page."""
    shoot(page, name)
    folders = [SCREENSHOTS, *([Path(os.environ["KIZUNA_README_IMAGES"])] if os.environ.get("KIZUNA_README_IMAGES")
                              else [])]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))


def test_the_operator_pages_of_the_demo_node_in_both_languages(demo: tuple[ServerProcess, str], browser: Any) -> None:
    server, token = demo
    for language, locale in (("en", "en-GB"), ("ja", "ja-JP")):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(server.base + "/console/")
        page.fill("#token", token)
        page.locator("form.sign-in button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/console/$"))
        assert page.locator("html").get_attribute("lang") == language
        for path, (name, shown) in PAGES.items():
            page.goto(f"{server.base}/console/{path}")
            assert shown in page.locator("main").inner_text(), (language, path)
            check_accessibility(page)
            if language == "ja":
                assert untranslated(page) == [], path
            _picture(page, f"console-operator-{name}-{language}")
        context.close()
