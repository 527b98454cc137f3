"""The scheduled sync worker: one per node, however many server processes or hosts serve it.

``kizuna serve`` starts one ``kizuna sync --loop`` process next to the web server.  The worker only
syncs while it holds the ``sync-worker`` lease in the store, renewed after every page; a second
worker (another ``serve`` on the same PostgreSQL database, or an operator's manual loop) waits until
the lease expires.  A worker whose parent server died exits instead of lingering.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable

from kizuna.core import metrics
from kizuna.core.node import Node
from kizuna.federation.state import FederationState
from kizuna.federation.sync import Syncer

LEASE_NAME = "sync-worker"
LEASE_TTL_S = 30.0


def stop_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies, even by SIGKILL (best effort)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent-pid check at each tick notices the parent's death a little later


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_worker(
    node: Node, stop: threading.Event, tick_s: float = 2.0, parent_pid: int | None = None,
    on_run: Callable[[str, dict[str, object]], None] | None = None,
) -> None:
    state = FederationState(node.store)
    holder = worker_id()

    def heartbeat() -> None:
        state.take_lease(LEASE_NAME, holder, LEASE_TTL_S)

    syncer = Syncer(node, heartbeat=heartbeat)
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            if state.take_lease(LEASE_NAME, holder, LEASE_TTL_S):
                for partner in state.list_partners():
                    if stop.is_set():
                        break
                    if syncer.due(partner.name):
                        report = syncer.sync_partner(partner.name, force=False)
                        if not report.skipped:
                            metrics.sync_finished(partner.name, ok=report.error is None)
                        if on_run is not None:
                            on_run(partner.name, report.as_dict())
                        heartbeat()
            stop.wait(tick_s)
    finally:
        state.release_lease(LEASE_NAME, holder)
