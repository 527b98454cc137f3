"""What the node's processes count: requests, latency, ingested objects, matcher events, sync runs.

The instruments live in prometheus-client.  ``kizuna serve`` runs several processes (``--workers N``
plus the sync worker), so the counts must not depend on which process answers a scrape:
:func:`share_between_processes` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any
server process starts, every process then writes its counts into memory-mapped files there, and
:func:`exposition` sums them.  Without that variable (a single process, or a test) the counts live in
this process's own registry.

prometheus-client decides between those two modes when it is first imported, so nothing here imports
it at module level: a recording function imports it on first use, after ``serve`` set the directory.
Only counters and histograms are used — they add up correctly across processes, living or exited.
Values that must be right whoever asks and whatever process did the work (sync state per partner,
objects stored) are not counted here but read from the store at scrape time (``core/health.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "kizuna-metrics-"

#: Latency buckets (seconds): a discovery answer takes a millisecond, a large POST many seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: A collector: something with ``collect()`` yielding prometheus-client metric families.
Collector = Any


def share_between_processes() -> str:
    """Give this process and every process it starts from now on one directory for their counts.

    Call it in ``kizuna serve`` before the web and sync worker processes start.  The directory is
    this serve's own (a restart begins from zero, as Prometheus counters may); it is removed when the
    process exits normally, or by the next ``serve`` on this machine if it did not.
    """
    _sweep_abandoned()
    shared = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, shared, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = shared
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported before the directory existed: switch it to the shared files now
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    # Instruments made before (`kizuna demo` counts the objects it loads, then serves in this process) keep
    # their counts in this process's memory, which the scrape no longer reads: make them again, in the
    # files, so that every family is listed from the start and counted where /metrics looks.
    _instruments.cache_clear()
    return shared


def _sweep_abandoned() -> None:
    """Remove the counts directories of serves that ended without running their exit handlers.

    ``serve`` exits cleanly on SIGINT and SIGTERM (it catches the SIGTERM uvicorn raises again once it
    has shut down), but a killed process runs no handler at all, so its own clean-up cannot be relied on.
    A directory is named after the serve's pid and removed once no such process exists.
    """
    for path in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = path.name[len(_PREFIX):].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and Path("/proc/self").exists():
            shutil.rmtree(path, ignore_errors=True)


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@cache
def _own_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)


@cache
def _instruments() -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    # In multiprocess mode the instruments must not sit in a registry: the files are the registry.
    registry = None if _multiprocess() else _own_registry()
    return {
        "requests": Counter(
            "kizuna_http_requests", "HTTP requests answered, by route template, method and status.",
            ["endpoint", "method", "status"], registry=registry,
        ),
        "latency": Histogram(
            "kizuna_http_request_duration_seconds", "Time to answer an HTTP request, by route template and method.",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=registry,
        ),
        "ingested": Counter(
            "kizuna_objects_ingested", "STIX objects offered to this node's ingest (TAXII POST, sync pulls, "
            "stored sightings), by outcome: accepted (stored or already held) or refused.",
            ["outcome"], registry=registry,
        ),
        "events": Counter(
            "kizuna_matcher_events", "Observations run through the indicator matcher (rate() gives events/s).",
            registry=registry,
        ),
        "hits": Counter("kizuna_matcher_hits", "Matcher hits (an observation matching an indicator).",
                        registry=registry),
        "sync_runs": Counter(
            "kizuna_sync_runs", "Sync runs of the scheduled worker, by partner and outcome (ok or error).",
            ["partner", "outcome"], registry=registry,
        ),
    }


def http_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """One answered request; ``endpoint`` is the route template, never the raw path (bounded labels)."""
    found = _instruments()
    found["requests"].labels(endpoint, method, str(status)).inc()
    found["latency"].labels(endpoint, method).observe(seconds)


def objects_ingested(accepted: int, refused: int) -> None:
    found = _instruments()
    if accepted:
        found["ingested"].labels("accepted").inc(accepted)
    if refused:
        found["ingested"].labels("refused").inc(refused)


def matcher_ran(events: int, hits: int) -> None:
    found = _instruments()
    found["events"].inc(events)
    found["hits"].inc(hits)


def sync_finished(partner: str, ok: bool) -> None:
    """One scheduled sync run of ``partner`` ended (partners are configured, so labels stay bounded)."""
    _instruments()["sync_runs"].labels(partner, "ok" if ok else "error").inc()


def exposition(collectors: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition of every process's counts plus ``collectors``; (body, media type)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _instruments()  # so a node that has answered nothing yet still lists its (zero) families
    registry = CollectorRegistry(auto_describe=False)
    if _multiprocess():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(_own_registry().collect))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """Adapts another registry's ``collect`` into a collector of the scrape's registry."""

    def __init__(self, collect: Callable[[], Iterable[Any]]) -> None:
        self.collect = collect
