"""One partner's run, isolated: its liveness lease, and the outcome recorded whatever went wrong.

A run marks itself alive with the lease ``run:<partner>`` and a heartbeat thread renews it while
the run works, even while it waits on a slow partner.  When the process dies without a word (kill
-9, out of memory, power), the lease runs out and the partner's state reads "interrupted" instead
of "running" forever.  Whatever the run raises is recorded on that partner with backoff; it never
reaches the loop that syncs the other partners.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from kizuna.federation.state import RUN_LEASE_PREFIX, FederationState

#: Seconds a run counts as alive after its last heartbeat; the heartbeat renews it three times as often.
RUN_LEASE_TTL_S = 30.0
#: What ``--lease-ttl`` may be: a second at least (the heartbeat renews it three times as often), a day at most
#: (a killed run reads "running" until it passes; far larger values no longer fit the store's timestamps).
RUN_LEASE_TTL_RANGE_S = (1.0, 24 * 3600.0)

log = logging.getLogger("kizuna.federation")


def worker_id(tag: str | None = None) -> str:
    """Who holds a lease: host, process and a tag (random unless the supervisor chose it: pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag or uuid.uuid4().hex[:8]}"


class RunLease:
    """Hold ``run:<partner>`` for as long as the ``with`` block runs."""

    def __init__(self, state: FederationState, partner: str, holder: str, ttl_s: float = RUN_LEASE_TTL_S) -> None:
        self.state = state
        self.partner = partner
        self.holder = holder
        self.ttl_s = ttl_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.state.hold_run(self.partner, self.holder, self.ttl_s)
            except Exception as exc:  # a store hiccup: the next beat tries again, the run goes on
                log.warning("cannot renew the run lease of %s: %s", self.partner, exc)

    def __enter__(self) -> RunLease:
        self.state.hold_run(self.partner, self.holder, self.ttl_s)
        self._thread = threading.Thread(target=self._beat, name=f"kizuna-lease-{self.partner}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.state.release_lease(RUN_LEASE_PREFIX + self.partner, self.holder)
        except Exception as error:  # the lease then simply expires
            log.warning("cannot release the run lease of %s: %s", self.partner, error)


def describe_failure(exc: BaseException) -> str:
    """An operator-facing sentence for an exception a run did not expect."""
    text = str(exc).strip() or "no details"
    return f"unexpected {type(exc).__name__} during the run: {text}"
