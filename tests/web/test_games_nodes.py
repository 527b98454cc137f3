"""`kizuna demo --games`: three real nodes play a Games day over TAXII, the host's console shows it, and
Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.cli.common import CliError
from kizuna.cli.games_nodes import GamesDay
from tests.conftest import free_port, kizuna, kizuna_json
from tests.web.conftest import untranslated

TAXII = {"Accept": "application/taxii+json;version=2.1"}


def _objects(base: str, token: str, collection: str, kind: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{base}/main/collections/{collection}/objects/", params={"match[type]": kind},
                          headers={**TAXII, "Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json().get("objects", []))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _check_host(info: dict[str, Any], base: Path) -> None:
    host, soc, visitor = (info["nodes"][role] for role in ("host", "soc", "visitor"))
    alerts = kizuna_json(base / "host", "ops", "alerts", "games-2027")["alerts"]
    by_object = {a["object_id"]: a for a in alerts}
    phishing = by_object[info["phishing"]]
    assert (phishing["rule"], phishing["producer"]) == ("lookalike", visitor["organisation"])
    assert phishing["matched"] == info["lookalike"]
    sightings = [a for a in alerts if a["object_type"] == "sighting"]
    assert {a["producer"] for a in sightings} == {soc["organisation"], host["organisation"]}
    assert {a["rule"] for a in sightings} == {"relationship"}
    incidents = _objects(host["taxii_url"].removesuffix("/taxii2/"), host["token"], "games-2027-incidents",
                         "incident")
    assert [i["id"] for i in incidents] == [info["incident"]]
    assert incidents[0]["name"] == "Phishing wave on a ticketing lookalike"
    english = Path(info["reports"]["en"]).read_text()
    japanese = Path(info["reports"]["ja"]).read_text()
    assert english.startswith("# Shift report: Games 2027") and "Phishing wave on a ticketing lookalike" in english
    assert japanese.startswith("# シフトレポート: Games 2027") and "インシデント 1 件" in japanese
    for name in ("soc", "visitor"):  # each partner node's sync health, as the host pulled from it
        assert f"{info['nodes'][name]['organisation']}" in english
    exported = json.loads(kizuna(base / "host", "export", "--collection", "games-2027-incidents").stdout)["objects"]
    assert len([o for o in exported if o["type"] == "report"]) == 2
    translated = [o for o in exported if o["type"] == "language-content"]
    assert len(translated) == 1 and "シフトレポート" in translated[0]["contents"]["ja"]["name"]


def _check_sightings_back(info: dict[str, Any]) -> None:
    """The host's own sighting of the visiting nation's indicator reached the SOC's node over TAXII, and
    both sightings of it flowed back to the visiting nation's node, which produced it."""
    host, soc, visitor = (info["nodes"][role] for role in ("host", "soc", "visitor"))
    for node in (soc, visitor):
        sightings = _objects(node["taxii_url"].removesuffix("/taxii2/"), node["token"], "games", "sighting")
        producers = sorted(s["created_by_ref"] for s in sightings if s["sighting_of_ref"] == info["phishing"])
        assert producers == sorted([host["identity"], soc["identity"]]), node["organisation"]


def _check_console(info: dict[str, Any], browser: Any) -> None:
    host = info["nodes"]["host"]
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(host["console_url"].removesuffix("console/"))
    page.fill("#token", host["token"])
    page.locator("form.sign-in button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/console/$"))
    page.goto(host["operation_url"])
    assert page.locator("table.incidents tbody tr").count() == 1
    assert page.locator("table.alerts tbody tr").count() == info["alerts"]
    assert untranslated(page) == []
    context.close()


def test_three_nodes_play_a_games_day_and_stop_together(tmp_path: Path, browser: Any) -> None:
    base = tmp_path / "games"
    ports = [free_port() for _ in range(3)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(base), "demo", "--games", "--port", str(ports[0]),
         "--visitor-port", str(ports[1]), "--soc-port", str(ports[2]), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    pids: list[int] = []
    try:
        assert demo.stdout is not None
        line = demo.stdout.readline()  # printed once the day is played, while the three nodes serve
        assert line, f"the demo ended before it served: {demo.wait()} {demo.stderr.read() if demo.stderr else ''}"
        info = json.loads(line)
        pids = [node["pid"] for node in info["nodes"].values()]
        assert [info["nodes"][r]["taxii_url"] for r in ("host", "visitor", "soc")] == [
            f"http://127.0.0.1:{p}/taxii2/" for p in ports]
        assert all(_alive(pid) for pid in pids) and info["alerts"] >= 4
        _check_host(info, base)
        _check_sightings_back(info)
        _check_console(info, browser)
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(timeout=180) == 0
        assert [pid for pid in pids if _alive(pid)] == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_games_demo_refuses_a_used_directory_and_shared_ports(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("someone else's")
    refused = kizuna(used, "demo", "--games", "--port", str(free_port()), check=False)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.strip() == f"kizuna demo: {used} is not an empty directory; give the Games demo a new " \
        "--data directory"
    port = str(free_port())
    clash = kizuna(tmp_path / "fresh", "demo", "--games", "--port", str(free_port()), "--visitor-port", port,
                   "--soc-port", port, "--json", check=False)
    assert clash.returncode != 0
    assert json.loads(clash.stdout)["error"]["message"] == "the three nodes need three different ports"
    assert not (tmp_path / "fresh").exists() and sorted(p.name for p in used.iterdir()) == ["notes.txt"]


def test_a_node_whose_port_another_process_took_meanwhile_stops_the_demo(tmp_path: Path) -> None:
    """The ports are checked when the demo begins; one taken later (another demo starting on it) used to be
    knocked on and taken for this node's server, which had failed to bind: its tokens then went to the other."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        day = GamesDay(tmp_path / "games", {"host": port, "visitor": free_port(), "soc": free_port()}, lambda _: None)
        with pytest.raises(CliError, match=f"cannot listen on 127.0.0.1:{port}: the port is already in use"):
            day.start(day.host)
        assert day.host.process is None  # no server was started to fail behind the other's
