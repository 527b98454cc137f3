"""A detection worker: log chunks from NATS JetStream in, sightings stored through the node out.

Every worker pulls from one durable consumer (`stream.DURABLE`), so JetStream hands each chunk to
one worker at a time and adding workers shares the load. A batch of chunks is handled in three
steps, and only then acknowledged:

1. match: each chunk's lines go through the compiled index (`LineMatcher`, the fast path);
2. ledger: every hit is published to `KIZUNA_HITS` under the subject of its sighting, with a
   `Nats-Msg-Id` made of the chunk's stream sequence, the line and the indicator. JetStream drops a
   second message with the same id, so when a worker dies after this step and the chunk is
   redelivered, its hits are not counted twice;
3. sightings: each sighting the batch touched is brought up to date from its ledger subject (the
   hits this worker has not read yet, fetched by direct gets in stream order; count, first and last
   seen) and stored in the target collection through `Node.import_objects`.

A worker killed before step 3 finished leaves its chunks unacknowledged; JetStream redelivers them
after the ack wait, and whichever worker gets them finds the hits already in the ledger and stores
the sightings. Nothing is lost, nothing is counted twice.

Two workers may store the same sighting at once. Its `modified` is the window's start plus one
millisecond per hit counted, so versions order by how many hits they include (a ledger subject is
read in stream order, so equal counts are equal sets) and the newest version always holds the
most complete count; storing the same count twice is a duplicate, not a conflict.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

# nats-py raises its own TimeoutError from some fetch paths and asyncio.TimeoutError from others.
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

from kizuna.core.node import Node
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.fast import LineMatcher
from kizuna.detect.mappings import LogReader, Mapping
from kizuna.detect.run import NothingToMatch, require_indicators
from kizuna.detect.sightings import sighting_uuid
from kizuna.detect.stream import (
    CHANGE_SUBJECT,
    DURABLE,
    EVENTS_STREAM,
    EVENTS_SUBJECT,
    HITS_PREFIX,
    HITS_STREAM,
    ensure_streams,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stix_ms(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Tally:
    """What this worker has read of one ledger subject so far (the ledger only grows)."""

    seq: int = 0
    count: int = 0
    first: float = float("inf")
    last: float = float("-inf")


@dataclass(frozen=True)
class SightingKey:
    uuid: str
    indicator_id: str
    window_start: int


class SightingLedger:
    """The hits of every sighting, kept in JetStream and deduplicated by message id."""

    def __init__(self, js: JetStreamContext, identity_id: str, window_seconds: int) -> None:
        self.js = js
        self.identity_id = identity_id
        self.window_seconds = window_seconds
        self._tallies: dict[str, _Tally] = {}

    def key(self, indicator_id: str, at: float) -> SightingKey:
        start = int(at // self.window_seconds) * self.window_seconds
        return SightingKey(str(sighting_uuid(indicator_id, start, self.identity_id)), indicator_id, start)

    async def record(self, hits: Iterable[tuple[str, str, float]]) -> set[SightingKey]:
        """Publish (hit id, indicator, time) triples; JetStream keeps one copy per hit id."""
        touched: set[SightingKey] = set()
        acks = []
        for hit_id, indicator_id, at in hits:
            key = self.key(indicator_id, at)
            touched.add(key)
            payload = orjson.dumps({"t": at})
            acks.append(self.js.publish(f"{HITS_PREFIX}.{key.uuid}", payload, headers={"Nats-Msg-Id": hit_id}))
        await asyncio.gather(*acks)
        return touched

    async def _tally(self, key: SightingKey) -> _Tally:
        """Bring this worker's tally of one ledger subject up to date.

        The hits not yet read are fetched one by one in stream order ("next message on this subject
        after the last one read") until there is none: what was read is then a prefix of the
        subject, so two readers with the same count hold the same hits.
        """
        subject = f"{HITS_PREFIX}.{key.uuid}"
        tally = self._tallies.setdefault(key.uuid, _Tally())
        while True:
            try:
                msg = await self.js.get_msg(HITS_STREAM, seq=tally.seq + 1, subject=subject, next=True)
            except NotFoundError:
                return tally
            at = orjson.loads(msg.data or b"{}")["t"]
            tally.seq = int(msg.seq or tally.seq + 1)
            tally.count += 1
            tally.first, tally.last = min(tally.first, at), max(tally.last, at)

    async def sightings(self, keys: Iterable[SightingKey]) -> list[dict[str, Any]]:
        ordered = sorted(keys, key=lambda k: (k.window_start, k.uuid))
        # Every subject's reads in flight at once: round trips, not data, are the cost.
        tallies = await asyncio.gather(*(self._tally(key) for key in ordered))
        out = []
        for key, tally in zip(ordered, tallies, strict=True):
            if tally.count == 0:
                continue
            start_ms = key.window_start * 1000
            out.append({
                "type": "sighting",
                "spec_version": "2.1",
                "id": f"sighting--{key.uuid}",
                "created": _stix_ms(start_ms),
                "modified": _stix_ms(start_ms + tally.count),
                "sighting_of_ref": key.indicator_id,
                "count": tally.count,
                "first_seen": _stix_ms(int(tally.first * 1000)),
                "last_seen": _stix_ms(int(tally.last * 1000)),
                "where_sighted_refs": [self.identity_id],
                "created_by_ref": self.identity_id,
            })
        return out


@dataclass
class WorkerStats:
    chunks: int = 0
    lines: int = 0
    hits: int = 0
    sightings_stored: int = 0
    reloads: int = 0
    pauses: int = 0  # times a running worker found no usable indicator left and stopped taking chunks
    unparsable: int = 0  # lines that are no log line (not JSON, a broken TSV row)
    unmapped: int = 0  # lines of no format a shipped mapping knows
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "lines": self.lines, "hits": self.hits,
                "unparsable": self.unparsable, "unmapped": self.unmapped,
                "sightings_stored": self.sightings_stored, "reloads": self.reloads,
                "pauses": self.pauses, "store_failures": self.failures[:20]}


class DetectWorker:
    """One worker process's loop; `node` is its own connection to the node's store."""

    def __init__(self, node: Node, sources: list[Any], target: Any, mappings: list[Mapping], *,
                 identity_id: str, window_seconds: int = 3600, batch: int = 16, ack_wait: float = 30.0,
                 refresh_seconds: float = 5.0, fault: str | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        self.node, self.sources, self.target = node, sources, target
        self.mappings = mappings
        self.identity_id = identity_id
        self.window_seconds = window_seconds
        self.batch = batch
        self.ack_wait = ack_wait
        self.refresh_seconds = refresh_seconds
        # Fault injection for the crash tests: die at a chosen point of a batch, as `kill -9` would.
        self.fault = fault
        #: Told, in one line, when the worker pauses for want of indicators and when it takes chunks again.
        self.notify = notify
        self.stats = WorkerStats()
        self._woken = asyncio.Event()  # set by the change subject: a paused worker looks again at once
        self._changed = True
        self._freshness: Any = None
        self._checked = 0.0
        self.matcher: LineMatcher | None = None
        self.reader = LogReader(mappings)
        self.indicator_load: dict[str, int] = {}
        self.usable_indicators = 0

    # --- indicators -----------------------------------------------------------------------------

    def _current_freshness(self) -> Any:
        return (self.node.store.policy_generation(),
                tuple(self.node.store.collection_stats(c.pk) for c in self.sources))

    def refresh(self) -> None:
        """Rebuild the index when told to (change subject) or when a source collection changed."""
        now = time.monotonic()
        if not self._changed and now - self._checked < self.refresh_seconds:
            return
        self._checked = now
        freshness = self._current_freshness()
        if not self._changed and freshness == self._freshness:
            return
        engine = DetectionEngine(self.identity_id, window_seconds=self.window_seconds)
        load: dict[str, int] = {}
        started = time.time()
        for collection in self.sources:
            objects = (orjson.loads(body) for body in self.node.export_objects(collection, latest_only=True))
            for status, count in engine.load_indicators(objects, now=started).items():
                load[status] = load.get(status, 0) + count
        self.reader = LogReader(self.mappings)  # a new one per reload; `handle` counts its bad lines by chunk
        self.matcher = engine.line_matcher(self.reader)
        self.indicator_load = load
        self.usable_indicators = engine.index.stats()["indicators"]
        self._freshness, self._changed = freshness, False
        self.stats.reloads += 1

    async def _on_change(self, _msg: Msg) -> None:
        self._changed = True
        self._woken.set()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait, taking nothing, until indicators may have come back: a change notice, the next refresh
        interval, or the stop. A chunk taken now would be acknowledged with its lines matched against
        nothing, lost to every worker."""
        self._woken.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())]
        try:
            await asyncio.wait(waits, timeout=self.refresh_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    # --- the loop -------------------------------------------------------------------------------

    async def handle(self, ledger: SightingLedger, msgs: list[Msg]) -> None:
        self.refresh()
        assert self.matcher is not None
        hits: list[tuple[str, str, float]] = []
        read = self.reader.stats
        unparsable, unmapped = read.problem_count, read.skipped
        for msg in msgs:
            meta = msg.metadata
            seq = meta.sequence.stream
            # A line without a time of its own is dated by the chunk's arrival in the stream, which
            # is the same on every delivery, so the hit falls in the same window every time.
            arrived = meta.timestamp.timestamp() if meta.timestamp else time.time()
            lines = msg.data.split(b"\n")
            for alert in self.matcher.alerts(lines):
                at = alert.time if alert.time is not None else arrived
                hits.append((f"{seq}:{alert.line}:{alert.indicator_id}", alert.indicator_id, at))
            self.stats.lines += sum(1 for line in lines if line[:1] != b"#")  # TSV headers ride along
        # Counted for a chunk delivered again too, as its lines are: the counts are of lines handled.
        self.stats.unparsable += read.problem_count - unparsable
        self.stats.unmapped += read.skipped - unmapped
        touched = await ledger.record(hits)
        self._maybe_die("after-ledger")
        if self.target is not None and touched:
            sightings = await ledger.sightings(touched)
            report = self.node.import_objects(self.target, sightings)
            self.stats.sightings_stored += report.success_count
            self.stats.failures.extend(f"{f.get('id')}: {f.get('message')}" for f in report.failures)
        self._maybe_die("after-store")
        for msg in msgs:
            await msg.ack_sync()
        self.stats.chunks += len(msgs)
        self.stats.hits += len(hits)

    def _say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)

    def _maybe_die(self, point: str) -> None:
        if self.fault == point:
            os._exit(70)

    async def run(self, nc: Client, stop: asyncio.Event, *, until_drained: bool = False,
                  max_chunks: int | None = None) -> WorkerStats:
        self.refresh()  # refused before the consumer is made too (its --ack-wait is fixed by its first worker)
        require_indicators(self.usable_indicators, self.indicator_load, "--from-collection")
        js = nc.jetstream()
        await ensure_streams(js)
        ledger = SightingLedger(js, self.identity_id, self.window_seconds)
        config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                max_ack_pending=-1)
        sub = await js.pull_subscribe(EVENTS_SUBJECT, durable=DURABLE, stream=EVENTS_STREAM, config=config)
        await nc.subscribe(CHANGE_SUBJECT, cb=self._on_change)
        paused = False
        while not stop.is_set():
            # Checked before each fetch, not after: a chunk taken by a worker that can match nothing
            # would be acknowledged with its lines unmatched, lost to the workers that could match them.
            self.refresh()
            if self.usable_indicators == 0:
                if until_drained or max_chunks is not None:
                    # a run that is to end: it ends here, refused, and leaves the chunks to others
                    require_indicators(self.usable_indicators, self.indicator_load, "--from-collection")
                if not paused:
                    # A worker left running outlives its indicators being revoked, expired or deleted (a
                    # quiet spell between operations): it waits for new ones rather than stopping.
                    paused = True
                    self.stats.pauses += 1
                    self._say(f"{_why_none(self.indicator_load)}; taking no chunks until there are")
                await self._pause(stop)
                continue
            if paused:
                paused = False
                n = self.usable_indicators
                self._say(f"{n} indicator{'' if n == 1 else 's'} to match again; taking chunks")
            wanted = self.batch if max_chunks is None else min(self.batch, max_chunks - self.stats.chunks)
            if wanted <= 0:
                break
            try:
                msgs = await sub.fetch(wanted, timeout=0.5)
            except (TimeoutError, NatsTimeout):
                if until_drained and await _drained(js):
                    break
                continue
            await self.handle(ledger, msgs)
        return self.stats


def _why_none(load: dict[str, int]) -> str:
    try:
        require_indicators(0, load, "--from-collection")
    except NothingToMatch as exc:
        return str(exc)
    raise AssertionError("require_indicators accepts no usable indicator")


async def _drained(js: JetStreamContext) -> bool:
    """True when no chunk waits for delivery and none is out with a worker (nor due for redelivery)."""
    info = await js.consumer_info(EVENTS_STREAM, DURABLE)
    return info.num_pending == 0 and info.num_ack_pending == 0
