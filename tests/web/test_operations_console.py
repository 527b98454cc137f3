"""The console's operation pages against a real `kizuna serve`: an operation with two partners, a
protected domain, partner indicators over TAXII (one AMBER lookalike, one RED), an incident and a shift
report. Each token sees the operation through the one visibility check: a partner sees its own RED
indicator's alert and the other partner does not, a token outside the operation gets the 404 page, and
only operators see the partner tokens' states. In Chromium: axe and the Japanese catalog on both pages,
and a PostgreSQL case over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import pytest
import requests

from kizuna.core.node import Node
from kizuna.core.operators import set_operator_right
from kizuna.ops.assets import add_assets
from kizuna.ops.incidents import add_incident
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.ops.report import shift_report
from kizuna.ops.workspace import create_operation
from kizuna.policy.tlp import TlpLevel, oasis_id
from tests.web.conftest import Console, check_accessibility, shoot, signed_in, untranslated

TAXII = "application/taxii+json;version=2.1"
DOMAIN = "games2027.example"
LOOKALIKE = sorted(d for d, fuzzer in lookalikes_of(DOMAIN).items() if fuzzer == "homoglyph")[0]


def _indicator(producer: str, name: str, value: str, level: TlpLevel) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
            "modified": now, "name": name, "pattern": f"[domain-name:value = '{value}']", "pattern_type": "stix",
            "valid_from": now, "created_by_ref": producer, "object_marking_refs": [oasis_id(level)]}


def set_up_operation(console: Console) -> dict[str, str]:
    """The operation, written in-process as the CLI would (to save start-ups); partners post over TAXII."""
    today = dt.datetime.now(dt.UTC).date()
    node = Node.open(console.data_dir)
    try:
        soc = node.create_organisation("Games SOC", "JPN")["id"]
        jp = node.store.get_organisation("JPCERT/CC")
        assert jp is not None
        operation, issued = create_operation(node, "Games Console", str(today - dt.timedelta(days=1)),
                                             str(today + dt.timedelta(days=10)), ["JPCERT/CC", "Games SOC"])
        add_assets(node, operation, [("domain", DOMAIN)])
        secrets = {t.organisation: t.secret for t in issued}
        token_id, operator = node.create_token("NCSC UK", list(operation.collections.values()), [], "ops desk")
        set_operator_right(node, token_id, True)
    finally:
        node.close()
    console.tokens.update({"jp-op": secrets["JPCERT/CC"], "soc-op": secrets["Games SOC"], "ops-desk": operator})
    phish = _indicator(jp.id, "Ticketing lookalike", f"pay.{LOOKALIKE}", TlpLevel.AMBER)
    secret = _indicator(jp.id, "Red-only login host", f"login.{DOMAIN}", TlpLevel.RED)
    answer = requests.post(f"{console.base}/main/collections/games-console-intel/objects/",
                           data=json.dumps({"objects": [phish, secret]}), timeout=30,
                           headers={"Accept": TAXII, "Content-Type": TAXII,
                                    "Authorization": f"Bearer {secrets['JPCERT/CC']}"})
    assert answer.status_code == 202, answer.text
    node = Node.open(console.data_dir)
    try:
        from kizuna.ops.records import find

        operation = find(node.store, "games-console")
        incident = add_incident(node, operation, "Phishing wave on the ticketing lookalike", assign="Games SOC")
        report = shift_report(node, operation, 0)
    finally:
        node.close()
    return {"soc": soc, "phish": phish["id"], "secret": secret["id"], "incident": incident["id"],
            "report": report.stix[0]["id"]}


@pytest.fixture(scope="module")
def games(console: Console) -> dict[str, str]:
    return set_up_operation(console)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_each_token_sees_the_operation_as_its_reads_allow(console: Console, games: dict[str, str]) -> None:
    jp = console.sign_in("jp-op")
    listed = jp.get(console.base + "/console/operations")
    assert listed.status_code == 200 and 'href="/console/operations/games-console"' in listed.text
    board = jp.get(console.base + "/console/operations/games-console")
    text = _text(board.text)
    assert board.status_code == 200
    assert "Ticketing lookalike" in text and "Red-only login host" in text  # its own RED object, and its alert
    assert "lookalike" in text and "containment" in text and LOOKALIKE in text
    assert "Phishing wave on the ticketing lookalike" in text and "Games SOC" in text and "suspected" in text
    assert f'href="/console/objects/{games["report"]}"' in board.text
    assert 'href="/console/browse?collection=games-console-intel"' in board.text
    assert "JPCERT/CC" in text and "active" not in text  # partners named; token states are the operators'
    soc = _text(console.sign_in("soc-op").get(console.base + "/console/operations/games-console").text)
    assert "Ticketing lookalike" in soc and "Red-only login host" not in soc and "containment" not in soc
    desk = _text(console.sign_in("ops-desk").get(console.base + "/console/operations/games-console").text)
    assert desk.count("active") == 2
    # A token outside the operation: no operation listed, and the 404 page of a path that does not exist.
    outside = console.sign_in("jp")
    assert "games-console" not in outside.get(console.base + "/console/operations").text
    absent = outside.get(console.base + "/console/operations/no-such-op")
    hidden = outside.get(console.base + "/console/operations/games-console")
    assert (hidden.status_code, hidden.text.replace("games-console", "")) == (
        404, absent.text.replace("no-such-op", ""))


def test_the_operation_pages_are_accessible_in_english_and_japanese(console: Console, games: dict[str, str],
                                                                     browser: Any) -> None:
    page = signed_in(browser, console, "ops-desk", browse=False)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    page.get_by_role("link", name="Games Console").click()
    page.wait_for_url(re.compile(r".*/console/operations/games-console$"))
    assert page.get_by_role("heading", name="Alerts on protected assets").is_visible()
    assert page.get_by_role("rowheader", name="Phishing wave on the ticketing lookalike").is_visible()
    check_accessibility(page)
    shoot(page, "operation-en")
    page.get_by_role("link", name=re.compile("^Shift report: Games Console")).click()
    page.wait_for_url(re.compile(rf".*/console/objects/{games['report']}$"))
    page.get_by_role("button", name="日本語").click()
    for path, name in (("operations", "operations-ja"), ("operations/games-console", "operation-ja")):
        page.goto(f"{console.base}/console/{path}")
        assert page.locator("h1").is_visible()
        assert untranslated(page) == [], path
        check_accessibility(page)
        shoot(page, name)
    assert page.get_by_role("heading", name="保護資産に関するアラート").is_visible()
    page.context.close()


def test_the_operation_pages_on_postgresql(pg_console: Console) -> None:
    games = set_up_operation(pg_console)
    board = _text(pg_console.sign_in("soc-op").get(pg_console.base + "/console/operations/games-console").text)
    assert "Ticketing lookalike" in board and "Red-only login host" not in board
    assert "Phishing wave on the ticketing lookalike" in board
    jp = pg_console.sign_in("jp-op").get(pg_console.base + "/console/operations/games-console").text
    assert "Red-only login host" in _text(jp) and f'/console/objects/{games["report"]}' in jp
    assert pg_console.sign_in("uk").get(pg_console.base + "/console/operations/games-console").status_code == 404


def test_a_relationship_alert_names_what_it_came_through(console: Console, games: dict[str, str]) -> None:
    """A partner's sighting of the lookalike indicator raises a relationship alert: the board names the
    indicator it came through and links to it (it showed the bare id)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sighting = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
                "modified": now, "sighting_of_ref": games["phish"], "object_marking_refs": [oasis_id(TlpLevel.AMBER)]}
    answer = requests.post(f"{console.base}/main/collections/games-console-incidents/objects/",
                           data=json.dumps({"objects": [sighting]}), timeout=30,
                           headers={"Accept": TAXII, "Content-Type": TAXII,
                                    "Authorization": f"Bearer {console.tokens['soc-op']}"})
    assert answer.status_code == 202, answer.text
    board = console.sign_in("soc-op").get(console.base + "/console/operations/games-console").text
    assert f'<td class="url"><a href="/console/objects/{games["phish"]}">Ticketing lookalike</a></td>' in board


def test_the_board_names_the_shift_report_in_the_readers_language(console: Console, games: dict[str, str]) -> None:
    """A Japanese shift report carries its name in a language-content object: the board links to it by
    that name in Japanese, as the dashboard does, and by the report's own name in English."""
    from kizuna.ops.records import find
    from kizuna.web.i18n import translations

    node = Node.open(console.data_dir)
    try:
        report = shift_report(node, find(node.store, "games-console"), 0, "ja", translations("ja").gettext)
    finally:
        node.close()
    link = f'<a href="/console/objects/{report.stix[0]["id"]}">'
    ja = console.sign_in("jp-op", **{"Accept-Language": "ja"}).get(console.base + "/console/operations/games-console")
    assert f"{link}シフトレポート: Games Console</a>" in ja.text
    en = console.sign_in("jp-op", **{"Accept-Language": "en"}).get(console.base + "/console/operations/games-console")
    assert f"{link}Shift report: Games Console</a>" in en.text


_ROW_HEIGHTS = ("() => [...document.querySelectorAll('table.alerts tbody tr')]"
                ".map(r => r.getBoundingClientRect().height)")


def test_the_japanese_board_reads_at_phone_and_desktop_widths(console: Console, games: dict[str, str],
                                                               browser: Any) -> None:
    """Japanese text may break between any two characters, so a squeezed table column went one character
    per line: alert rows hundreds of pixels tall on a phone, headers like ルール stacked on a desktop. The
    tables keep their words whole and scroll inside their own box instead of squeezing or widening the page."""
    node = Node.open(console.data_dir)
    try:
        jp = node.store.get_organisation("JPCERT/CC")
    finally:
        node.close()
    assert jp is not None
    long = [_indicator(jp.id, f"Ticket resale lookalike number {n} seen in the partner's phishing mail to fans",
                       f"tickets-and-hospitality-packages-{n}.{LOOKALIKE}", TlpLevel.AMBER) for n in range(3)]
    answer = requests.post(f"{console.base}/main/collections/games-console-intel/objects/", timeout=30,
                           data=json.dumps({"objects": long}),
                           headers={"Accept": TAXII, "Content-Type": TAXII,
                                    "Authorization": f"Bearer {console.tokens['jp-op']}"})
    assert answer.status_code == 202, answer.text
    page = signed_in(browser, console, "ops-desk", locale="ja-JP", browse=False)
    page.goto(f"{console.base}/console/operations/games-console")
    assert page.get_by_role("heading", name="保護資産に関するアラート").is_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        heights = page.evaluate(_ROW_HEIGHTS)
        assert heights and max(heights) < 160, (width, heights)
        single = page.evaluate("""() => [...document.querySelectorAll(
          'table.alerts thead th, table.incidents thead th, table.alerts tbody td:nth-child(2)')]
          .map(th => { const r = document.createRange(); r.selectNodeContents(th);
                       return [th.textContent.trim(), r.getClientRects().length]; })""")
        assert [name for name, lines in single if lines != 1] == [], width
        shoot(page, f"operation-ja-{width}")  # and the page itself never scrolls sideways
    page.context.close()
