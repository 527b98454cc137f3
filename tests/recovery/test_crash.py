"""kill -9 at random points during a large TAXII POST, a ``kizuna import`` and a sync, then restart and check.

Real processes, SQLite and PostgreSQL. Each scenario runs ``KIZUNA_CRASH_ITERATIONS`` times (3 by
default, so CI stays short; set more to hunt), each at a point drawn from a seeded generator
(``KIZUNA_CRASH_SEED``, printed with every failure so a run can be repeated). The point is a delay
drawn as a fraction of how long the same work took uninterrupted in the same run, so it lands
anywhere from process start-up to just after the answer, whatever the machine's speed.

After each crash: what was acknowledged is stored byte for byte; an envelope that was not is there
whole or not at all (ingest's promise: its valid objects commit together); an import leaves whole
batches of its file in file order and a rerun completes it; a sync leaves a prefix of the partner's
collection and the next run continues it with no gap and no duplicate; the audit chain verifies.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.conftest import BACKENDS, TAXII, PgDatabase, create_pg_database, kizuna_json
from tests.federation.helpers import FedNode, add_partner, grant_partner, make_fed_node, sync
from tests.recovery.helpers import chain_ok, indicators, kill_9, rows, serve

ITERATIONS = int(os.environ.get("KIZUNA_CRASH_ITERATIONS", "3"))
SEED = int(os.environ.get("KIZUNA_CRASH_SEED", "20261204"))
ENVELOPE = 1500  # over ingest's batch of 1000: an envelope once committed in three pieces
IMPORT_BATCH = 1000  # core/ingest.py commits an import every this many objects
PAGE = 100


@dataclass
class Pair:
    backend: str
    uk: FedNode  # serves; takes POSTs and imports, and is the partner JP pulls from
    jp: FedNode  # pulls from UK with `kizuna sync`
    databases: list[PgDatabase]


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Built once per backend for the module (CI runs a file on one worker: --dist loadfile)."""
    base = tmp_path_factory.mktemp("crash")
    databases = [create_pg_database(), create_pg_database()] if request.param == "postgresql" else []
    uk = make_fed_node(base, "UK", "GBR", databases[0].url if databases else None)
    jp = make_fed_node(base, "JP", "JPN", databases[1].url if databases else None)
    grant_partner(uk, jp, "JPN")
    serve(uk)
    add_partner(jp, uk, "pull", page_size=PAGE)
    try:
        yield Pair(request.param, uk, jp, databases)
    finally:
        uk.stop()
        for database in databases:
            database.drop()


def _rng(name: str, backend: str) -> random.Random:
    return random.Random(f"{SEED}:{name}:{backend}")


def _crash_point(rng: random.Random, uninterrupted_s: float) -> float:
    return rng.uniform(0.2, 1.1) * uninterrupted_s


def _stored(pair: Pair, node: FedNode | None = None) -> dict[str, bytes]:
    node = node or pair.uk
    return {stix_id: body for stix_id, _, body in rows(node.store_url, node.collection)}


class Post(threading.Thread):
    """One large POST; ``acknowledged`` only when the 202 with its status arrived."""

    def __init__(self, node: FedNode, objects: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.node, self.objects = node, objects
        self.acknowledged = False
        self.done = threading.Event()

    def run(self) -> None:
        try:
            response = requests.post(
                f"{self.node.api_root_url}collections/{self.node.collection}/objects/",
                data=json.dumps({"objects": self.objects}), timeout=120,
                headers={"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {self.node.admin_token}"},
            )
            self.acknowledged = response.status_code == 202 and response.json()["success_count"] == len(self.objects)
        except requests.RequestException:
            self.acknowledged = False  # the server died under the request: not acknowledged
        finally:
            self.done.set()


def test_kill_9_during_a_large_post(pair: Pair) -> None:
    rng = _rng("post", pair.backend)
    sent: list[tuple[list[dict[str, Any]], bool]] = []
    started = time.monotonic()
    first = Post(pair.uk, indicators(pair.uk.identity, ENVELOPE, "calibration"))
    first.run()
    assert first.acknowledged
    sent.append((first.objects, True))
    uninterrupted = time.monotonic() - started
    for iteration in range(ITERATIONS):
        post = Post(pair.uk, indicators(pair.uk.identity, ENVELOPE, f"post {iteration}"))
        point = _crash_point(rng, uninterrupted)
        post.start()
        post.done.wait(point)  # the crash point: a drawn instant into the request, or just after it
        assert pair.uk.server is not None
        port = pair.uk.server.port
        kill_9(pair.uk.server.process)
        post.join(timeout=120)
        sent.append((post.objects, post.acknowledged))
        serve(pair.uk, port)
        stored = _stored(pair)
        where = f"POST: seed {SEED}, iteration {iteration}, kill at {point:.2f}s"
        for objects, acknowledged in sent:
            present = [obj["id"] in stored for obj in objects]
            if acknowledged:
                assert all(present), f"acknowledged objects lost ({where})"
            else:
                assert len(set(present)) == 1, f"{sum(present)} of {len(objects)} half-visible ({where})"
            for obj, here in zip(objects, present, strict=True):
                assert not here or stored[obj["id"]] == orjson.dumps(obj), f"altered bytes ({where})"
        chain_ok(pair.uk.store_url)


def _import(node: FedNode, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(node.data_dir), "import", str(path), "--collection",
         "shared", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _bundle(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--7b1e2a38-8f64-4f0a-9b55-3d1f4c1f5a10",
                                   "objects": objects}))
    return path


def test_kill_9_during_import(pair: Pair, tmp_path: Path) -> None:
    rng = _rng("import", pair.backend)
    started = time.monotonic()
    calibration = _import(pair.uk, _bundle(tmp_path / "calibration.json",
                                           indicators(pair.uk.identity, 2200, "import calibration")))
    calibration.communicate(timeout=300)
    assert calibration.returncode == 0
    uninterrupted = time.monotonic() - started
    for iteration in range(ITERATIONS):
        objects = indicators(pair.uk.identity, 2200, f"import {iteration}")
        path = _bundle(tmp_path / f"import-{iteration}.json", objects)
        process = _import(pair.uk, path)
        point = _crash_point(rng, uninterrupted)
        try:
            process.wait(timeout=point)  # the crash point
        except subprocess.TimeoutExpired:
            pass
        kill_9(process)
        where = f"import: seed {SEED}, iteration {iteration}, kill at {point:.2f}s"
        stored = _stored(pair)
        held = [obj["id"] in stored for obj in objects]
        kept = sum(held)
        # Whole batches, in file order: the first k objects and none after them.
        assert held == [True] * kept + [False] * (len(objects) - kept), where
        assert kept % IMPORT_BATCH == 0 or kept == len(objects), f"{kept} stored: a batch split ({where})"
        chain_ok(pair.uk.store_url)
        rerun = kizuna_json(pair.uk.data_dir, "import", str(path), "--collection", "shared")
        assert (rerun["stored"], rerun["duplicates"], rerun["failed"]) == (len(objects) - kept, kept, 0), where
        stored = _stored(pair)
        assert all(stored[obj["id"]] == orjson.dumps(obj) for obj in objects), where


def _sync_process(node: FedNode) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(node.data_dir), "sync", "UK", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def test_kill_9_during_sync(pair: Pair) -> None:
    rng = _rng("sync", pair.backend)
    uk, jp = pair.uk, pair.jp
    started = time.monotonic()
    first = sync(jp, "UK")["runs"][0]  # everything the other scenarios stored
    assert first["error"] is None
    uninterrupted = time.monotonic() - started
    for iteration in range(ITERATIONS):
        Post(uk, indicators(uk.identity, 500, f"sync {iteration}")).run()
        victim = rng.choice(["puller", "partner"])
        point = _crash_point(rng, uninterrupted)
        process = _sync_process(jp)
        try:
            process.wait(timeout=point)  # the crash point
        except subprocess.TimeoutExpired:
            pass
        assert uk.server is not None
        if victim == "puller":
            kill_9(process)
        else:
            port = uk.server.port
            kill_9(uk.server.process)
            process.communicate(timeout=120)
            serve(uk, port)
        where = f"sync: seed {SEED}, iteration {iteration}, kill the {victim} at {point:.2f}s"
        source = [(i, v, b) for i, v, b in rows(uk.store_url, uk.collection) if not i.startswith("marking-")]
        pulled = [(i, v, b) for i, v, b in rows(jp.store_url, jp.collection) if not i.startswith("marking-")]
        assert pulled == source[: len(pulled)], f"not a prefix of the partner's collection ({where})"
        chain_ok(jp.store_url)
        run = sync(jp, "UK")["runs"][0]
        assert run["error"] is None, where
        assert (run["pulled"], run["duplicates"]) == (len(source) - len(pulled), 0), where
        caught_up = [(i, v, b) for i, v, b in rows(jp.store_url, jp.collection) if not i.startswith("marking-")]
        assert caught_up == source, f"gaps or duplicates after the resumed sync ({where})"

