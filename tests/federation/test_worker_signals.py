"""`kizuna sync --loop` stops on SIGTERM however many arrive at once.

The supervisor in `kizuna serve` and the kernel's parent-death signal can both send SIGTERM to the
worker at nearly the same moment. The worker once set its stop event from the signal handler itself, so
a second signal landing inside the first handler's `Event.set` (or inside `Event.wait`) deadlocked it on
the event's lock: the worker never exited, kept the server's stderr open, and hung whoever waited for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.federation.helpers import make_fed_node, poll


def test_a_burst_of_sigterms_stops_the_worker_and_releases_its_lease(tmp_path: Path) -> None:
    node = make_fed_node(tmp_path, "JP", "JPN")
    worker = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(node.data_dir), "sync", "--loop", "--tick", "0.05", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        poll(lambda: node.sql("SELECT holder FROM fed_lease WHERE name = 'sync-worker'"), what="the worker's lease")
        # SIGTERM after SIGTERM, landing while the earlier ones are still being handled, for as long as the
        # worker lives (a deadlocked worker would live on: the count bounds the burst, the wait below fails).
        for _ in range(200_000):
            if worker.poll() is not None:
                break
            os.kill(worker.pid, signal.SIGTERM)
        code = worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.stderr is not None
    # 0, or SIGTERM's own end when one lands after the interpreter has begun shutting down (its handlers gone)
    assert code in (0, -signal.SIGTERM), worker.stderr.read().decode()
    assert node.sql("SELECT holder FROM fed_lease WHERE name = 'sync-worker'") == []
