"""The detection tier on a real NATS JetStream server: workers crash, share load, and count exactly.

Each test starts its own `nats-server -js` on a free port (so its streams are its own), feeds log
chunks with `kizuna detect publish` and runs `kizuna detect worker` processes against a real
SQLite node. Expected counts come from the generated log itself and are checked against the
single-process matcher over the same lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import orjson
import pytest

from kizuna.core.node import Node
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings
from tests.conftest import free_port, kizuna, kizuna_json, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")

DOMAINS = {"evil-a.example": "indicator--00000000-0000-4000-8000-00000000000a",
           "evil-b.example": "indicator--00000000-0000-4000-8000-00000000000b"}
BASE_TS = 1_700_000_000  # windows of an hour; the log spans two of them
LINES = 1200
CHUNK = 50  # 24 chunks


def _indicator(domain: str, indicator_id: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": indicator_id, "created": "2024-01-01T00:00:00.000Z",
            "modified": "2024-01-01T00:00:00.000Z", "pattern": f"[domain-name:value = '{domain}']",
            "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"}


def _log(path: Path) -> Counter[tuple[str, int]]:
    """A Zeek DNS log in JSON lines; returns the expected hits per (indicator, window start)."""
    expected: Counter[tuple[str, int]] = Counter()
    with path.open("wb") as out:
        for n in range(LINES):
            ts = BASE_TS + n * 5.5  # 1200 lines over ~1.8 hours
            domain = "evil-a.example" if n % 7 == 0 else "evil-b.example" if n % 11 == 0 else f"ok{n}.example"
            out.write(orjson.dumps({"ts": ts, "id.orig_h": "10.0.0.5", "id.resp_h": "192.0.2.53", "query": domain})
                      + b"\n")
            if domain in DOMAINS:
                expected[(DOMAINS[domain], int(ts // 3600) * 3600)] += 1
    return expected


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("nats-node")
    data = base / "node"
    # Set up in process (the commands themselves are tested elsewhere): it keeps this module's time small.
    node = Node.init(data, org_name="Games SOC", country="JPN")
    indicators = [_indicator(d, i) for d, i in DOMAINS.items()]
    node.import_objects(node.create_collection("Intel", alias="intel"), indicators)
    node.close()
    log = base / "dns.json.log"
    expected = _log(log)
    # The single-process matcher agrees with the generator on the same lines.
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    engine.load_indicators(indicators)
    matcher = engine.line_matcher(LogReader(shipped_mappings().values()))
    assert len(list(matcher.alerts(log.read_bytes().splitlines()))) == sum(expected.values())
    return {"data": data, "log": log, "expected": expected}


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _sightings_collection(data: Path, name: str) -> str:
    node = Node.open(data)
    try:
        node.create_collection(name, alias=name)
    finally:
        node.close()
    return name


def _worker_args(data: Path, url: str, collection: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kizuna", "--data", str(data), "detect", "worker", "--nats", url,
            "--from-collection", "intel", "--collection", collection, "--ack-wait", "1", "--json", *extra]


def _stored_counts(data: Path, collection: str) -> Counter[tuple[str, int]]:
    node = Node.open(data)
    try:
        found: Counter[tuple[str, int]] = Counter()
        target = node.find_collection(collection, None)
        for body in node.export_objects(target, latest_only=True):
            sighting = orjson.loads(body)
            created = datetime.strptime(sighting["created"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            start = int(created.timestamp())
            found[(sighting["sighting_of_ref"], start)] = sighting["count"]
        return found
    finally:
        node.close()


def _consumer(url: str) -> Any:
    async def info() -> Any:
        nc = await nats.connect(url)
        try:
            return await nc.jetstream().consumer_info("KIZUNA_EVENTS", "kizuna-detect")
        finally:
            await nc.close()

    return asyncio.run(info())


def _wait_until(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a condition, bounded by the deadline


def _publish(world: dict[str, Any], url: str) -> int:
    published = kizuna_json(world["data"], "detect", "publish", str(world["log"]), "--nats", url,
                            "--chunk-lines", str(CHUNK))
    assert published["lines"] == LINES
    return int(published["chunks"])


@pytest.mark.parametrize("fault", ["after-ledger", "after-store"])
def test_a_worker_dying_mid_batch_loses_nothing_and_counts_nothing_twice(
    world: dict[str, Any], nats_url: str, fault: str
) -> None:
    collection = _sightings_collection(world["data"], f"s-{fault}")
    chunks = _publish(world, nats_url)
    dying = subprocess.run(_worker_args(world["data"], nats_url, collection, "--batch", "6"),
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "KIZUNA_DETECT_FAULT": fault})
    assert dying.returncode == 70, dying.stderr  # it died inside its first batch, before acknowledging
    assert _consumer(nats_url).num_ack_pending == 6
    drain = subprocess.run(_worker_args(world["data"], nats_url, collection, "--until-drained"),
                           capture_output=True, text=True, timeout=120)
    assert drain.returncode == 0, drain.stderr
    summary = json.loads(drain.stdout)
    assert summary["chunks"] == chunks  # the 6 chunks of the dead worker were redelivered to this one
    assert summary["store_failures"] == []
    assert _stored_counts(world["data"], collection) == world["expected"]


def test_a_worker_killed_while_running_loses_nothing(world: dict[str, Any], nats_url: str) -> None:
    collection = _sightings_collection(world["data"], "s-kill")
    _publish(world, nats_url)
    victim = subprocess.Popen(_worker_args(world["data"], nats_url, collection, "--batch", "1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _delivered(nats_url) >= 4, "the first worker to take chunks")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    drain = subprocess.run(_worker_args(world["data"], nats_url, collection, "--until-drained"),
                           capture_output=True, text=True, timeout=120)
    assert drain.returncode == 0, drain.stderr
    assert _stored_counts(world["data"], collection) == world["expected"]


def test_two_workers_share_the_stream_and_agree_on_counts(world: dict[str, Any], nats_url: str) -> None:
    collection = _sightings_collection(world["data"], "s-two")
    workers = [subprocess.Popen(_worker_args(world["data"], nats_url, collection, "--batch", "1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        # Both must be waiting on the consumer before anything is published, or one could take it all.
        _wait_until(lambda: _try_waiting(nats_url) >= 2, "both workers to wait on the consumer")
        chunks = _publish(world, nats_url)
        _wait_until(lambda: _drained(nats_url), "the stream to drain")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
    summaries = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        summaries.append(json.loads(out))
    assert sum(s["chunks"] for s in summaries) == chunks
    assert all(s["chunks"] > 0 for s in summaries), summaries
    assert _stored_counts(world["data"], collection) == world["expected"]


def _try_waiting(url: str) -> int:
    try:
        return int(_consumer(url).num_waiting)
    except nats.js.errors.NotFoundError:  # the consumer is created by the first worker to start
        return 0


def _delivered(url: str) -> int:
    try:
        return int(_consumer(url).delivered.stream_seq)
    except nats.js.errors.NotFoundError:
        return 0


def _drained(url: str) -> bool:
    info = _consumer(url)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def test_publish_refuses_what_is_not_a_nats_url(world: dict[str, Any]) -> None:
    result = kizuna(world["data"], "detect", "publish", str(world["log"]), "--nats", "127.0.0.1:4222", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("kizuna detect publish: --nats must be a NATS server URL")


def test_a_worker_counts_the_lines_it_could_not_read(world: dict[str, Any], nats_url: str, tmp_path: Path) -> None:
    # A file of no log format is published as any file is; the worker must say it read none of it.
    table = tmp_path / "table.csv"
    table.write_text("host,seen\nexample.com,2026-01-01\n{\"neither\": \"this\"}\n")
    kizuna_json(world["data"], "detect", "publish", str(table), "--nats", nats_url)
    collection = _sightings_collection(world["data"], "s-unread")
    drain = subprocess.run(_worker_args(world["data"], nats_url, collection, "--until-drained"),
                           capture_output=True, text=True, timeout=120)
    assert drain.returncode == 0, drain.stderr
    summary = json.loads(drain.stdout)
    assert (summary["lines"], summary["hits"], summary["unparsable"], summary["unmapped"]) == (3, 0, 2, 1)


def test_a_line_larger_than_the_server_takes_is_named_and_the_rest_published(
        world: dict[str, Any], nats_url: str, tmp_path: Path) -> None:
    """A line over NATS's maximum payload (1 MB) failed the command with a traceback's last line and no place,
    and was dropped in silence; it is named by file and line, the rest is published, and the run fails."""
    log = tmp_path / "dns.json.log"
    line = {"ts": BASE_TS, "id.orig_h": "10.0.0.5", "id.resp_h": "10.0.0.53", "query": "evil-a.example"}
    huge = orjson.dumps({**line, "query": "x" * 1_100_000})
    small = [orjson.dumps({**line, "ts": BASE_TS + n}) for n in range(3)]
    log.write_bytes(b"\n".join([small[0], huge, small[1], small[2]]) + b"\n")
    args = ("detect", "publish", str(log), "--nats", nats_url)
    result = kizuna(world["data"], *args, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"kizuna detect publish: {log}:2: the line is {len(huge):,} bytes, larger than the server's maximum "
        "payload, and was left out; published 3 lines of 1 file in 1 chunk"]
    error = json.loads(kizuna(world["data"], *args, "--json", check=False).stdout)["error"]
    assert (error["code"], error["file"], error["line"]) == ("too-large", str(log), 2)

    async def stored() -> int:
        nc = await nats.connect(nats_url)
        try:
            return int((await nc.jetstream().stream_info("KIZUNA_EVENTS")).state.messages)
        finally:
            await nc.close()

    assert asyncio.run(stored()) == 2  # one chunk of the three small lines from each run


@pytest.mark.parametrize("command", [("publish", "LOG"), ("notify",),
                                     ("worker", "--from-collection", "intel", "--collection", "intel")])
def test_a_nats_server_that_is_not_there_fails_in_one_line(world: dict[str, Any], command: tuple[str, ...]) -> None:
    # Nothing listens on a port just found free: the client must give up (it retried for ever, a
    # traceback an attempt) and the command must say so in one line.
    args = [str(world["log"]) if word == "LOG" else word for word in command]
    url = f"nats://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(world["data"]), "detect", *args,
                             "--nats", url, "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == "", result.stderr[-2000:]
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "nats" and error["message"].startswith(f"cannot connect to NATS at {url}: ")


def test_a_worker_without_a_collection_for_its_sightings_is_refused(world: dict[str, Any]) -> None:
    # It would acknowledge every chunk it matched and store nothing: the stream consumed for nothing.
    result = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(world["data"]), "detect", "worker",
                             "--nats", "nats://127.0.0.1:4222", "--from-collection", "intel"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "kizuna detect worker: Missing option '--collection' / '-c'.\n"


def test_a_running_worker_picks_up_new_indicators(world: dict[str, Any], nats_url: str, tmp_path: Path) -> None:
    collection = _sightings_collection(world["data"], "s-change")
    worker = subprocess.Popen(_worker_args(world["data"], nats_url, collection, "--batch", "1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    late_id = "indicator--00000000-0000-4000-8000-00000000000c"
    try:
        _wait_until(lambda: _try_waiting(nats_url) >= 1, "the worker to wait on the consumer")
        late = tmp_path / "late.json"
        late.write_text(json.dumps([_indicator("late-c.example", late_id)]))
        kizuna_json(world["data"], "import", str(late), "--collection", "intel")
        kizuna_json(world["data"], "detect", "notify", "--nats", nats_url)
        log = tmp_path / "late.log"
        log.write_bytes(b"".join(orjson.dumps({"ts": BASE_TS + k, "id.orig_h": "10.0.0.7", "id.resp_h": "192.0.2.53",
                                               "query": "late-c.example"}) + b"\n" for k in range(3)))
        kizuna_json(world["data"], "detect", "publish", str(log), "--nats", nats_url)
        _wait_until(lambda: _drained(nats_url), "the stream to drain")
    finally:
        worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert json.loads(out)["reloads"] >= 2  # loaded at start, and again for the new indicator
    assert _stored_counts(world["data"], collection) == {(late_id, BASE_TS // 3600 * 3600): 3}


def _stderr_line(worker: subprocess.Popen[str], deadline_s: float = 60.0) -> str:
    """The worker's next line on standard error, waited for up to a deadline (not a fixed sleep)."""
    assert worker.stderr is not None
    ready, _, _ = select.select([worker.stderr], [], [], deadline_s)
    if not ready:
        raise AssertionError("timed out waiting for the worker to say something on standard error")
    return worker.stderr.readline()


def test_a_running_worker_whose_indicators_vanish_pauses_and_loses_no_line(
        world: dict[str, Any], nats_url: str, tmp_path: Path) -> None:
    # Before, it stopped (no-indicators) the moment its one indicator was deleted; and a worker that went on
    # taking chunks would acknowledge lines matched against nothing, lost to every worker.
    source = _sightings_collection(world["data"], "pause-intel")
    collection = _sightings_collection(world["data"], "s-pause")
    first_id, back_id = ("indicator--00000000-0000-4000-8000-0000000000d1",
                         "indicator--00000000-0000-4000-8000-0000000000d2")
    first = tmp_path / "first.json"
    first.write_text(json.dumps([_indicator("first-d.example", first_id)]))
    kizuna_json(world["data"], "import", str(first), "--collection", source)
    args = _worker_args(world["data"], nats_url, collection, "--batch", "1")
    args[args.index("intel")] = source
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until(lambda: _try_waiting(nats_url) >= 1, "the worker to wait on the consumer")
        kizuna_json(world["data"], "objects", "delete", first_id, "--collection", source)
        kizuna_json(world["data"], "detect", "notify", "--nats", nats_url)
        assert _stderr_line(worker) == ("kizuna detect worker: no indicators to match: the indicator inputs given "
                                        "(--from-collection) held none; taking no chunks until there are\n")
        log = tmp_path / "back.log"
        log.write_bytes(b"".join(orjson.dumps({"ts": BASE_TS + k, "id.orig_h": "10.0.0.8", "id.resp_h": "192.0.2.53",
                                               "query": "back-d.example"}) + b"\n" for k in range(4)))
        kizuna_json(world["data"], "detect", "publish", str(log), "--nats", nats_url, "--chunk-lines", "1")
        back = tmp_path / "back.json"
        back.write_text(json.dumps([_indicator("back-d.example", back_id)]))
        kizuna_json(world["data"], "import", str(back), "--collection", source)
        kizuna_json(world["data"], "detect", "notify", "--nats", nats_url)
        assert _stderr_line(worker) == "kizuna detect worker: 1 indicator to match again; taking chunks\n"
        _wait_until(lambda: _drained(nats_url), "the stream to drain")
    finally:
        worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    summary = json.loads(out)
    assert summary["pauses"] == 1 and summary["chunks"] == 4
    # the four lines published while it was paused waited for it, and were matched once it had an indicator
    assert _stored_counts(world["data"], collection) == {(back_id, BASE_TS // 3600 * 3600): 4}


def test_a_worker_with_no_indicators_is_refused_before_it_takes_a_chunk(world: dict[str, Any], nats_url: str) -> None:
    # It would acknowledge every chunk it took with its lines matched against nothing: lost to the
    # workers that can match them. `kizuna match` refuses the same collection the same way.
    empty = _sightings_collection(world["data"], "no-intel")
    collection = _sightings_collection(world["data"], "s-no-intel")
    chunks = _publish(world, nats_url)
    args = _worker_args(world["data"], nats_url, collection, "--until-drained")
    args[args.index("intel")] = empty
    refused = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stderr == "", refused.stderr[-2000:]
    assert json.loads(refused.stdout)["error"]["code"] == "no-indicators"
    plain = subprocess.run([a for a in args if a != "--json"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr == ("kizuna detect worker: no indicators to match: the indicator inputs given "
                            "(--from-collection) held none\n")
    assert _delivered(nats_url) == 0
    drain = subprocess.run(_worker_args(world["data"], nats_url, collection, "--until-drained"),
                           capture_output=True, text=True, timeout=120)
    assert drain.returncode == 0, drain.stderr
    assert json.loads(drain.stdout)["chunks"] == chunks
    assert _stored_counts(world["data"], collection) == world["expected"]


def test_the_readme_says_what_the_worker_and_match_print(nats_url: str, tmp_path: Path) -> None:
    # README "Matcher workers on NATS JetStream", run as written there against a fresh node.
    root = Path(__file__).resolve().parents[2]
    section = (root / "README.md").read_text().partition("### Matcher workers on NATS JetStream")[2]
    data = tmp_path / "node"
    kizuna(data, "init", "--org-name", "Example CERT", "--country", "NZL")
    for title, alias in (("Intel", "intel"), ("Sightings", "sightings")):
        kizuna(data, "collections", "create", "--title", title, "--alias", alias)
    kizuna(data, "import", str(root / "examples/zeek/demo-indicators.json"), "--collection", "intel")
    logs = [str(root / "examples/zeek/dns.log"), str(root / "examples/zeek/json/http.log")]
    kizuna(data, "detect", "publish", *logs, "--nats", nats_url)
    worker = kizuna(data, "detect", "worker", "--nats", nats_url, "--from-collection", "intel",
                    "--collection", "sightings", "--until-drained")
    said = worker.stdout.strip()
    assert f"`{said}`" in section, said
    matched = kizuna(data, "match", "--from-collection", "intel", *logs, "-o", str(tmp_path / "out.json"))
    told = matched.stderr + matched.stdout
    assert "82 events" in told and "0 of no known format" in told  # what the README compares the worker with
    assert "82 log events" in section and "here none" in section
