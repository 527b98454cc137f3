"""The scheduled sync worker: one per node, however many server processes or hosts serve it.

``kizuna serve`` starts one ``kizuna sync --loop`` process next to the web server.  The worker only
syncs while it holds the ``sync-worker`` lease in the store, renewed after every page; a second
worker (another ``serve`` on the same PostgreSQL database, or an operator's manual loop) waits until
the lease expires.  A worker whose parent server died exits instead of lingering.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from kizuna.core import metrics
from kizuna.core.node import Node
from kizuna.federation.misp_feed import MispConverter
from kizuna.federation.runs import RUN_LEASE_TTL_S, worker_id
from kizuna.federation.state import FederationState
from kizuna.federation.sync import Syncer

LEASE_NAME = "sync-worker"
LEASE_TTL_S = 30.0
#: What the worker's poll interval (``--tick``) may be: 50 ms at least, an hour at most (partners are due as
#: often as every second; a worker that sleeps far longer misses their schedules and looks stuck).
TICK_S = 2.0
TICK_RANGE_S = (0.05, 3600.0)

log = logging.getLogger("kizuna.federation")


def stop_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies, even by SIGKILL (best effort)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent-pid check at each tick notices the parent's death a little later


def run_worker(
    node: Node, stop: threading.Event, tick_s: float = TICK_S, parent_pid: int | None = None,
    on_run: Callable[[str, dict[str, object]], None] | None = None, holder: str | None = None,
    run_lease_ttl_s: float = RUN_LEASE_TTL_S, misp_converter: MispConverter | None = None,
) -> None:
    """Sync every due partner while holding the node's worker lease, until ``stop`` is set.

    Each partner's run is isolated (``Syncer.sync_partner`` records its failures on it); a failure
    outside any run (the store unreachable for a moment) is logged and the loop carries on at the
    next tick.  If the process dies anyway, the supervisor in ``kizuna serve`` starts a new one.
    """
    state = FederationState(node.store)
    holder = holder or worker_id()

    def heartbeat() -> None:
        state.take_lease(LEASE_NAME, holder, LEASE_TTL_S)

    syncer = Syncer(node, heartbeat=heartbeat, holder=holder, lease_ttl_s=run_lease_ttl_s,
                    misp_converter=misp_converter)
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            try:
                _tick(state, syncer, holder, stop, heartbeat, on_run)
            except Exception as exc:  # not one partner's fault: try again at the next tick
                log.warning("sync worker: %s: %s", type(exc).__name__, exc)
            stop.wait(tick_s)
    finally:
        try:
            state.release_lease(LEASE_NAME, holder)
        except Exception as exc:  # the lease then expires on its own
            log.warning("sync worker: cannot release its lease: %s", exc)


def _tick(
    state: FederationState, syncer: Syncer, holder: str, stop: threading.Event, heartbeat: Callable[[], None],
    on_run: Callable[[str, dict[str, object]], None] | None,
) -> None:
    if not state.take_lease(LEASE_NAME, holder, LEASE_TTL_S):
        return
    for name in state.partner_names():
        if stop.is_set():
            return
        try:
            if not syncer.due(name):
                continue
            report = syncer.sync_partner(name, force=False)
            if not report.skipped:
                metrics.sync_finished(name, ok=report.error is None)
            if on_run is not None:
                on_run(name, report.as_dict())
        except KeyError:
            continue  # removed since the names were read
        except Exception as exc:  # e.g. its status could not be written: the next partner still syncs
            log.warning("sync worker: partner %s: %s: %s", name, type(exc).__name__, exc)
        heartbeat()
