"""Federation's part of readiness and metrics, read from the store so any server process answers alike.

The sync worker runs in its own process and proves it is alive by holding the ``sync-worker`` lease
(renewed every tick and after every page); partner state — last success, consecutive failures,
totals — is what each run records in ``fed_status``.  Reading both at scrape or probe time makes the
answer the same whichever web process is asked, and counts syncs run by hand with ``kizuna sync``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from kizuna.core.health import OK, ReadinessCheck
from kizuna.core.node import Node
from kizuna.federation.state import FederationState
from kizuna.federation.worker import LEASE_NAME
from kizuna.stix.timestamps import now_micros

#: Set by ``kizuna serve`` in the environment of its web processes: "1" when it runs a sync worker.
SERVES_WORKER_ENV = "KIZUNA_SYNC_WORKER"


def announce_worker(running: bool) -> None:
    """Tell the web processes ``kizuna serve`` is about to start whether a sync worker runs beside them."""
    os.environ[SERVES_WORKER_ENV] = "1" if running else "0"


def worker_check(node: Node) -> ReadinessCheck:
    """A live sync worker, when this server runs one and the node has partners to sync with."""

    def sync_worker() -> str:
        if os.environ.get(SERVES_WORKER_ENV) != "1":
            return "skipped: this server runs no sync worker"
        state = FederationState(node.store)
        if not state.list_partners():
            return "skipped: no partners"
        lease = state.lease_holder(LEASE_NAME)
        if lease is None or lease[1] < now_micros():
            return "not running: no sync worker has held the worker lease recently"
        return OK

    return ("sync_worker", sync_worker)


class SyncCollector:
    """Per partner: lag since the last success, failures, totals; and whether a worker holds the lease."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = FederationState(self.node.store)
        now = now_micros()
        lease = state.lease_holder(LEASE_NAME)
        worker = GaugeMetricFamily("kizuna_sync_worker_up", "1 while a sync worker holds the worker lease.")
        worker.add_metric([], 1 if lease is not None and lease[1] >= now else 0)
        yield worker

        labels = ["partner"]
        lag = GaugeMetricFamily(
            "kizuna_sync_lag_seconds", "Seconds since the partner's last successful sync (absent: never).",
            labels=labels)
        last = GaugeMetricFamily(
            "kizuna_sync_last_success_timestamp_seconds", "When the partner last synced successfully.",
            labels=labels)
        failures = GaugeMetricFamily(
            "kizuna_sync_consecutive_failures", "Failed sync runs since the partner's last success.", labels=labels)
        up = GaugeMetricFamily("kizuna_sync_partner_up", "1 if the partner's latest sync run succeeded.",
                               labels=labels)
        pulled = CounterMetricFamily("kizuna_sync_pulled_objects", "Object versions pulled from the partner.",
                                     labels=labels)
        pushed = CounterMetricFamily("kizuna_sync_pushed_objects", "Object versions pushed to the partner.",
                                     labels=labels)
        quarantined = CounterMetricFamily(
            "kizuna_sync_quarantined_objects", "Objects from or for the partner held in quarantine.", labels=labels)
        for partner in state.list_partners():
            status = state.get_status(partner.name)
            name = [partner.name]
            if status.last_success is not None:
                lag.add_metric(name, max(0, now - status.last_success) / 1_000_000)
                last.add_metric(name, status.last_success / 1_000_000)
            failures.add_metric(name, status.failures)
            up.add_metric(name, 1 if status.failures == 0 and status.last_success is not None else 0)
            pulled.add_metric(name, status.pulled)
            pushed.add_metric(name, status.pushed)
            quarantined.add_metric(name, status.quarantined)
        yield from (lag, last, failures, up, pulled, pushed, quarantined)
