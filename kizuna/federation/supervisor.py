"""The sync worker of ``kizuna serve``, supervised: started beside the web server, restarted when it dies.

The worker is a separate ``kizuna sync --loop`` process so a sync never competes with the API for
the server's event loop.  A worker that dies (a crash, the OOM killer, an operator's kill -9) would
otherwise leave the node without federation until the server restarts.  The supervisor thread waits
on it, releases the leases the dead process held (it knows exactly which: it chose the tag of the
worker's lease holder), and starts a new one after a short delay that grows while the worker keeps
dying soon after starting.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from kizuna.core.node import Node
from kizuna.federation.state import FederationState

#: Seconds before each restart while the worker keeps dying; a worker that lived a minute resets it.
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
HEALTHY_AFTER_S = 60.0

log = logging.getLogger("kizuna.federation")


def release_leases_of(data_dir: Path, holder: str) -> int:
    """Drop the worker lease and run leases of a process known to be dead, so nothing waits for them."""
    node = Node.open(data_dir)
    try:
        return FederationState(node.store).release_all(holder)
    finally:
        node.close()


class WorkerSupervisor:
    """Keep one ``kizuna sync --loop`` child of this process running until :meth:`stop`."""

    def __init__(self, data_dir: Path, restart_delays_s: tuple[float, ...] = RESTART_DELAYS_S) -> None:
        self.data_dir = data_dir
        self.restart_delays_s = restart_delays_s
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="kizuna-sync-supervisor", daemon=True)

    def start(self) -> WorkerSupervisor:
        self._thread.start()
        return self

    def _spawn(self, tag: str) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            # Spawned from this thread, which lives as long as the server: the child's parent-death
            # signal (PR_SET_PDEATHSIG) follows the spawning thread.
            self._process = subprocess.Popen([
                sys.executable, "-m", "kizuna", "--data", str(self.data_dir), "sync", "--loop",
                "--parent-pid", str(os.getpid()), "--worker-tag", tag,
            ])
            return self._process

    def _supervise(self) -> None:
        quick_deaths = 0
        while not self._stop.is_set():
            tag = uuid.uuid4().hex[:8]
            try:
                process = self._spawn(tag)
            except OSError as exc:
                process = None
                log.warning("kizuna serve: cannot start the sync worker: %s", exc)
            if process is None and self._stop.is_set():
                return
            started = time.monotonic()
            code = process.wait() if process is not None else None
            if self._stop.is_set():
                return
            if process is not None:
                try:
                    release_leases_of(self.data_dir, f"{socket.gethostname()}:{process.pid}:{tag}")
                except Exception as exc:  # the leases then expire on their own
                    log.warning("kizuna serve: cannot release the dead sync worker's leases: %s", exc)
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                quick_deaths = 0
            delay = self.restart_delays_s[min(quick_deaths, len(self.restart_delays_s) - 1)]
            quick_deaths += 1
            # Said only once the delay has passed without the server stopping: on Ctrl-C the whole process
            # group gets the signal, and the worker exits a moment before the server tells this thread to stop.
            if self._stop.wait(delay):
                return
            sys.stderr.write(f"kizuna serve: the sync worker exited (status {code}) {delay:g} s ago; "
                             "starting a new one\n")
            sys.stderr.flush()
            self.restarts += 1

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop supervising and stop the worker (it finishes its current page and gives its lease back)."""
        with self._lock:
            self._stop.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout=timeout_s)
