"""A real console to test: a `kizuna serve` on a loopback port with two organisations' tokens and a
small set of objects, and Debian's Chromium driven by Playwright.

The browser is never downloaded: Playwright launches ``/usr/bin/chromium``. Without it these tests are
skipped on a developer's machine and fail under ``CI=true`` (CI installs it, see .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.core.node import Node
from kizuna.core.operators import set_operator_right
from kizuna.policy import TLP2_IDS
from kizuna.policy.tlp import TlpLevel
from tests.conftest import ServerProcess, create_pg_database, kizuna, kizuna_json, start_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CLEAR, AMBER_STRICT = TLP2_IDS[TlpLevel.CLEAR], TLP2_IDS[TlpLevel.AMBER_STRICT]
RED = TLP2_IDS[TlpLevel.RED]


@dataclass
class Console:
    """A running node: ``tokens`` by organisation ("uk", "jp"), ``ids`` of the objects by role."""

    data_dir: Path
    server: ServerProcess
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base

    def sign_in(self, who: str = "uk", **headers: str) -> requests.Session:
        """A signed-in HTTP client (no browser), through the real sign-in form."""
        session = requests.Session()
        session.headers.update(headers)
        form = session.get(self.base + "/console/sign-in")
        csrf = form_csrf(form.text)
        answer = session.post(self.base + "/console/sign-in", data={"csrf": csrf, "token": self.tokens[who],
                                                                    "next": "/console/"}, allow_redirects=False)
        assert answer.status_code == 303, answer.text
        return session


    def taxii_count(self, who: str) -> int:
        """How many objects the token receives over TAXII from the collection (latest versions)."""
        url = f"{self.base}/main/collections/games/objects/"
        headers = {"Accept": "application/taxii+json;version=2.1", "Authorization": f"Bearer {self.tokens[who]}"}
        envelope = requests.get(url, headers=headers, timeout=30).json()
        assert not envelope["more"]
        return len(envelope.get("objects", []))


def add_operator(console: Console, label: str = "operator desk") -> None:
    """An operator token of the node's organisation reading and writing "games", as ``console.tokens["op"]``
    (written in-process, as the CLI would, to save a start-up)."""
    node = Node.open(console.data_dir)
    try:
        games = node.find_collection("games").id
        token_id, secret = node.create_token("NCSC UK", [games], [games], label)
        set_operator_right(node, token_id, True)
    finally:
        node.close()
    console.tokens["op"], console.token_ids["op"] = secret, token_id


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form carrying a CSRF value"
    return found.group(1)


def _stamp(second: int) -> str:
    return f"2026-11-0{1 + second // 60}T10:00:{second % 60:02d}.000Z"


def console_objects(uk: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The test data: an indicator in three versions with a granular marking, the malware it indicates,
    a sighting of it, and an AMBER+STRICT threat actor the UK may see and Japan may not."""
    ids = {kind: f"{kind}--{uuid.uuid4()}" for kind in ("indicator", "malware", "relationship", "sighting")}
    ids["secret"] = f"threat-actor--{uuid.uuid4()}"
    common = {"spec_version": "2.1", "created_by_ref": uk, "created": _stamp(0)}
    versions = [
        {**common, "type": "indicator", "id": ids["indicator"], "modified": _stamp(n),
         "name": "Phishing domain of the Games ticket scam", "pattern_type": "stix",
         "pattern": "[domain-name:value = 'tickets-games.example']", "valid_from": _stamp(0),
         "description": f"Seen in phishing mail, revision {n}.", "object_marking_refs": [CLEAR],
         "granular_markings": [{"marking_ref": RED, "selectors": ["description"]}],
         **({"labels": ["phishing"]} if n >= 2 else {})}
        for n in (0, 1, 2)
    ]
    objects = [
        *versions,
        {**common, "type": "malware", "id": ids["malware"], "modified": _stamp(0), "name": "Ticket stealer",
         "is_family": True, "object_marking_refs": [CLEAR]},
        {**common, "type": "relationship", "id": ids["relationship"], "modified": _stamp(0),
         "relationship_type": "indicates", "source_ref": ids["indicator"], "target_ref": ids["malware"],
         "object_marking_refs": [CLEAR]},
        {**common, "type": "sighting", "id": ids["sighting"], "modified": _stamp(0),
         "sighting_of_ref": ids["indicator"], "first_seen": _stamp(5), "last_seen": _stamp(9), "count": 4,
         "where_sighted_refs": [uk], "object_marking_refs": [CLEAR]},
        {**common, "type": "threat-actor", "id": ids["secret"], "modified": _stamp(0),
         "name": "Operation Quiet Lantern", "threat_actor_types": ["spy"], "object_marking_refs": [AMBER_STRICT]},
    ]
    return objects, ids


def make_console(base_dir: Path, store_url: str | None = None) -> Console:
    data_dir = base_dir / "node"
    args = ["init", "--org-name", "NCSC UK", "--country", "GBR"]
    kizuna_json(data_dir, *args, *(["--store", store_url] if store_url else []))
    shared = kizuna_json(data_dir, "collections", "create", "--title", "Games security", "--alias", "games")["id"]
    uk = kizuna_json(data_dir, "status")["identity"]
    kizuna_json(data_dir, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    objects, ids = console_objects(uk)
    bundle = base_dir / "objects.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
    kizuna(data_dir, "import", str(bundle), "--collection", "games", "--quiet")
    console = Console(data_dir, start_server(data_dir, sync=False), ids=ids)
    for who, org in (("uk", "NCSC UK"), ("jp", "JPCERT/CC")):
        made = kizuna_json(data_dir, "tokens", "create", "--org", org, "--read", shared, "--label", f"console {who}")
        console.tokens[who], console.token_ids[who] = made["token"], made["id"]
    return console


@contextmanager
def running_console(base_dir: Path, backend: str = "sqlite") -> Iterator[Console]:
    """A console on ``backend``, stopped (and its PostgreSQL database dropped) afterwards."""
    database = create_pg_database() if backend == "postgresql" else None
    running = make_console(base_dir, database.url if database else None)
    try:
        yield running
    finally:
        running.server.stop()
        if database:
            database.drop()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def pg_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console-pg"), "postgresql") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests need Chromium at {CHROMIUM} on CI (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            launched.close()


def signed_in(browser: Any, console: Console, who: str = "uk", javascript: bool = True, locale: str = "en-GB",
              browse: bool = True) -> Any:
    """A page in a fresh browser context, signed in through the form as ``who``, then on Browse
    (``browse=False``: left on the dashboard, where signing in lands)."""
    context = browser.new_context(java_script_enabled=javascript, locale=locale,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(console.base + "/console/")
    page.fill("#token", console.tokens[who])
    page.locator("form.sign-in button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/console/$"))  # signing in lands on the dashboard
    if browse:
        page.goto(console.base + "/console/browse")
    return page


def shoot(page: Any, name: str) -> None:
    """Save a full-page screenshot and fail if the page scrolls sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"


def check_accessibility(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.response.get("passes"), "axe did not run on the page"
    serious = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not serious, serious


_TEXT_NODES = """() => {
  const found = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (!parent || parent.closest("pre, code, script, style")) continue;
    const text = walker.currentNode.textContent.trim();
    if (text) found.push(text);
  }
  document.querySelectorAll("[aria-label]").forEach(el => found.push(el.getAttribute("aria-label")));
  return found;
}"""


def untranslated(page: Any) -> list[str]:
    """Visible UI text of a Japanese page that is still an English msgid (data and code excluded)."""
    from babel.messages.pofile import read_po

    import kizuna.web

    po_path = Path(kizuna.web.__file__).parent / "locale" / "ja" / "LC_MESSAGES" / "kizuna.po"
    with open(po_path, "rb") as f:
        catalog = read_po(f, locale="ja")
    english = set()
    for message in catalog:
        for msgid in ([message.id] if isinstance(message.id, str) else list(message.id)):
            text = message.string if isinstance(message.string, str) else " ".join(message.string)
            if msgid and "%(" not in msgid and msgid != text:
                english.add(msgid)
    texts = page.evaluate(_TEXT_NODES)
    title = str(texts[0]).split(" · ")
    return [text for text in [*title, *texts[1:]] if text in english]
