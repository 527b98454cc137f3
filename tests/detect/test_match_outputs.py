"""What `kizuna match` and the HTTP endpoint give back, as the README describes it: alerts naming file
and line, a self-contained sightings bundle, the shipped mapping-file example, the progress bar, and
the README's HTTP example run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna, run_on_a_terminal, start_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def _refs(obj: dict[str, Any]) -> set[str]:
    found = {obj[k] for k in ("sighting_of_ref", "created_by_ref") if isinstance(obj.get(k), str)}
    return found | set(obj.get("where_sighted_refs", []))


def test_alerts_name_file_and_line_and_the_bundle_is_self_contained(tmp_path: Path) -> None:
    zeek = EXAMPLES / "zeek"
    out, alerts = tmp_path / "sightings.json", tmp_path / "alerts.jsonl"
    logs = [str(zeek / "dns.log"), str(zeek / "json" / "files.log")]
    summary = json.loads(kizuna(tmp_path / "none", "match", "--indicators", str(zeek / "demo-indicators.json"),
                                *logs, "-o", str(out), "--alerts", str(alerts), "--json").stdout)
    hits = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(hits) == summary["hits"] > 0
    assert {h["file"] for h in hits} == set(logs)
    indicators = json.loads((zeek / "demo-indicators.json").read_text())["objects"]
    value_of = {i["id"]: i["pattern"].split("'")[-2] for i in indicators}
    for hit in hits:  # the line named is the line that holds the matched value
        text = Path(hit["file"]).read_text().splitlines()[hit["line"] - 1]
        assert value_of[hit["indicator"]] in text
    # A person reads the indicator's name beside its id (the id stays, for whatever reads alerts already).
    name_of = {i["id"]: i["name"] for i in indicators}
    assert [h["indicator_name"] for h in hits] == [name_of[h["indicator"]] for h in hits]
    assert list(hits[0])[:3] == ["indicator", "indicator_name", "time"]

    bundle = json.loads(out.read_text())
    objects = {o["id"]: o for o in bundle["objects"]}
    sightings = [o for o in bundle["objects"] if o["type"] == "sighting"]
    assert len(sightings) == summary["sightings"] > 0
    assert set().union(*(_refs(o) for o in bundle["objects"])) <= set(objects)
    assert {objects[s["sighting_of_ref"]]["type"] for s in sightings} == {"indicator"}
    assert summary["bundle_missing"] == {} and summary["bundle_objects"] == len(objects)


def test_outputs_write_into_a_pipe_or_device_and_through_a_link(tmp_path: Path) -> None:
    """`match -o /dev/null` renamed a plain file over the device (run as root, /dev/null was gone for every
    program after it); a FIFO another tool reads was replaced the same way, and a link by a file."""
    zeek = EXAMPLES / "zeek"
    args = ["match", "--indicators", str(zeek / "demo-indicators.json"), str(zeek / "dns.log"), "--json"]
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    summary = json.loads(kizuna(tmp_path / "none", *args, "--alerts", str(fifo), "-o", os.devnull).stdout)
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert len(received[0].splitlines()) == summary["hits"] > 0
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    kizuna(tmp_path / "none", *args, "-o", str(link))
    assert link.is_symlink() and json.loads(real.read_text())["type"] == "bundle"


def test_an_unknown_sighting_identity_is_reported_missing(tmp_path: Path) -> None:
    zeek = EXAMPLES / "zeek"
    other = "identity--7d5a0c3e-2f4b-4e1a-9c8d-1b2a3c4d5e6f"
    out = tmp_path / "sightings.json"
    summary = json.loads(kizuna(tmp_path / "none", "match", "--indicators", str(zeek / "demo-indicators.json"),
                                "--identity", other, str(zeek / "dns.log"), "-o", str(out), "--json").stdout)
    assert list(summary["bundle_missing"]) == [other]
    assert other not in {o["id"] for o in json.loads(out.read_text())["objects"]}


def test_the_shipped_mapping_file_example_works_as_documented(tmp_path: Path) -> None:
    # A copy of examples/ (mappings/ and zeek/ side by side), so that the run writes nothing into the tree.
    shutil.copytree(EXAMPLES / "mappings", tmp_path / "mappings")
    (tmp_path / "zeek").mkdir()
    shutil.copy(EXAMPLES / "zeek" / "demo-indicators.json", tmp_path / "zeek")
    workdir = tmp_path / "mappings"
    readme = README.read_text()
    command = "kizuna match --indicators ../zeek/demo-indicators.json --mapping-file proxy-mapping.json"
    assert command in readme and "proxy.log --alerts alerts.jsonl" in readme
    result = subprocess.run(
        [sys.executable, "-m", "kizuna", "match", "--indicators", "../zeek/demo-indicators.json", "--mapping-file",
         "proxy-mapping.json", "proxy.log", "--alerts", "alerts.jsonl", "--json"],
        cwd=workdir, capture_output=True, text=True, timeout=120, env={**os.environ, "KIZUNA_DATA": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["lines"], summary["events"], summary["unmapped"], summary["unparsed"]) == (4, 4, 0, 0)
    alerts = [json.loads(a) for a in (workdir / "alerts.jsonl").read_text().splitlines()]
    # guyspy.com by its host, 69.147.64.34 by its nested server address, the MD5 by the body hash.
    assert sorted((a["line"], a["source"]) for a in alerts) == [(1, "example-proxy"), (3, "example-proxy"),
                                                                (3, "example-proxy")]
    assert {a["file"] for a in alerts} == {"proxy.log"}
    values = {o["value"] for a in alerts for o in a["observables"]}
    assert {"http://guyspy.com/", "tcp", "GET", "10.0.0.5"} <= values  # template, const, refs


def test_progress_bar_on_a_terminal_only_and_not_with_json(tmp_path: Path) -> None:
    zeek = EXAMPLES / "zeek"
    base = [sys.executable, "-m", "kizuna", "--data", str(tmp_path / "none"), "match", "--indicators",
            str(zeek / "demo-indicators.json"), str(zeek / "http.log"), "-o", str(tmp_path / "s.json")]
    status, _out, screen = run_on_a_terminal(base, tmp_path)
    assert status == 0, screen
    assert re.search(r"http\.log.*lines\s+[\d,]+ lines/s\s+ETA", screen), screen
    lines = len((zeek / "http.log").read_text().splitlines())
    assert f"{lines:,} lines" in screen
    status, out, screen = run_on_a_terminal([*base, "--json"], tmp_path)
    assert status == 0 and json.loads(out)["lines"] == lines
    assert "lines/s" not in screen and screen.strip() == ""
    piped = subprocess.run(base, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert piped.returncode == 0 and "lines/s" not in piped.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README example uses curl")
def test_readme_http_example_runs_as_written(tmp_path: Path) -> None:
    block = re.search(r"```sh\n(kizuna init --org-name \"Example CERT\".*?)```", README.read_text(), re.S)
    assert block is not None
    script = block.group(1)
    setup, _, rest = script.partition("kizuna serve &\n")
    assert setup and rest.startswith("until curl ")  # the README waits for the server, then asks it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "kizuna"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m kizuna "$@"\n')
    shim.chmod(0o755)
    data = tmp_path / "node"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "KIZUNA_DATA": str(data)}
    made = subprocess.run(["bash", "-ec", setup + 'echo "TOKEN=$TOKEN"\n'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1].removeprefix("TOKEN=")
    server = start_server(data)
    try:
        port = server.base.rsplit(":", 1)[1]
        curl = rest.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        answer = subprocess.run(["bash", "-ec", curl], cwd=ROOT, env={**env, "TOKEN": token}, capture_output=True,
                                text=True, timeout=120)
    finally:
        server.stop()
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert body["hit_count"] > 0 and {h["source"] for h in body["hits"]} == {"zeek-dns"}
    assert body["stored"]["success_count"] == len(body["sightings"]) > 0
    exported = kizuna(data, "export", "--collection", "sightings").stdout
    assert {o["type"] for o in json.loads(exported)["objects"]} == {"sighting"}


def test_an_older_version_met_later_does_not_replace_the_newer_indicator() -> None:
    from kizuna.detect.mappings import shipped_mappings
    from kizuna.detect.run import MatchRun

    base = {"type": "indicator", "spec_version": "2.1", "id": "indicator--6a1b3a53-7f0e-4f0e-9d8c-3a2f1b0c9d8e",
            "created": "2020-01-01T00:00:00Z", "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"}
    newer = {**base, "modified": "2021-01-01T00:00:00.000Z", "pattern": "[domain-name:value = 'new.example']"}
    older = {**base, "modified": "2020-06-01T00:00:00Z", "pattern": "[domain-name:value = 'old.example']"}
    run = MatchRun("identity--00000000-0000-4000-8000-000000000000", list(shipped_mappings().values()),
                   forced=None, window=3600)
    run.load([newer, older])
    line = b'{"ts": 1600000000.0, "id.orig_h": "10.0.0.5", "id.resp_h": "10.0.0.53", "query": "%s"}'
    hits = [a.line for a in run.log_alerts("dns.json", [line % b"old.example", line % b"new.example"])]
    assert hits == [2]
    sightings = run.engine.aggregator.sightings()
    bundle, _missing = run.bundle.build(sightings, "bundle--00000000-0000-4000-8000-0000000000aa")
    assert [o["pattern"] for o in bundle["objects"] if o["type"] == "indicator"] == [newer["pattern"]]


def test_alerts_name_the_indicator_as_it_is_when_it_hits(tmp_path: Path) -> None:
    """An indicator without a name has a null one; of two versions, the one matched gives the name; observed
    data's alerts name it too."""
    stamp = "2020-01-01T00:00:00.000Z"

    def indicator(number: int, pattern: str, **more: Any) -> dict[str, Any]:
        return {"type": "indicator", "spec_version": "2.1",
                "id": f"indicator--{number:08d}-0000-4000-8000-000000000000", "created": stamp, "modified": stamp,
                "pattern": pattern, "pattern_type": "stix", "valid_from": "2000-01-01T00:00:00Z", **more}

    named = indicator(1, "[domain-name:value = 'guyspy.com']", name="Old name")
    renamed = {**named, "modified": "2021-01-01T00:00:00.000Z", "name": "Guyspy phishing domain"}
    unnamed = indicator(2, "[ipv4-addr:value = '69.147.64.34']")
    bundle = tmp_path / "indicators.json"
    bundle.write_text(json.dumps([renamed, named, unnamed]))
    alerts = tmp_path / "alerts.jsonl"
    kizuna(tmp_path / "none", "match", "--indicators", str(bundle), str(EXAMPLES / "zeek" / "dns.log"),
           str(EXAMPLES / "zeek" / "json" / "http.log"), "-o", str(tmp_path / "out.json"), "--alerts", str(alerts),
           "--json")
    hits = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert {(h["indicator"], h["indicator_name"]) for h in hits} == {
        (named["id"], "Guyspy phishing domain"), (unnamed["id"], None)}

    observed = tmp_path / "observed.json"
    domain = "domain-name--00000000-0000-4000-8000-000000000001"
    observed.write_text(json.dumps([
        {"type": "domain-name", "spec_version": "2.1", "id": domain, "value": "guyspy.com"},
        {"type": "observed-data", "spec_version": "2.1", "id": "observed-data--00000000-0000-4000-8000-000000000001",
         "created": stamp, "modified": stamp, "first_observed": stamp, "last_observed": stamp,
         "number_observed": 1, "object_refs": [domain]}]))
    kizuna(tmp_path / "none", "match", "--observed-data", "--indicators", str(bundle), str(observed),
           "-o", str(tmp_path / "out.json"), "--alerts", str(alerts), "--json")
    hits = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [(h["indicator"], h["indicator_name"]) for h in hits] == [(named["id"], "Guyspy phishing domain")]
