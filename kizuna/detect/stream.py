"""The detection tier's NATS JetStream layout, and feeding log lines into it.

Log lines travel in chunks: one JetStream message holds up to `CHUNK_LINES` lines of one file
(headers `Kizuna-File` and `Kizuna-Line`, the file's name and the number of the chunk's first
line). A Zeek TSV chunk starts with the file's `#` header lines, so any worker can read any chunk
on its own; JSON lines need no header. Chunks rather than single lines because a JetStream publish
and ack cost far more than matching a line does.

Streams (created on first use, idempotently, by both `publish` and the worker):

* `KIZUNA_EVENTS`, subject `kizuna.events.logs`: the log chunks, kept until acknowledged
  (work-queue retention), consumed by the durable pull consumer every worker shares.
* `KIZUNA_HITS`, subjects `kizuna.hits.<sighting uuid>`: the sighting ledger, one message per hit,
  deduplicated by JetStream on its `Nats-Msg-Id` (chunk sequence, line, indicator), so a chunk
  redelivered after a worker died adds no second copy of its hits (see worker.py).
* Core subject `kizuna.indicators.changed`: any message tells the workers to reload indicators.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from kizuna.detect.files import open_log

EVENTS_STREAM = "KIZUNA_EVENTS"
EVENTS_SUBJECT = "kizuna.events.logs"
HITS_STREAM = "KIZUNA_HITS"
HITS_PREFIX = "kizuna.hits"
CHANGE_SUBJECT = "kizuna.indicators.changed"
DURABLE = "kizuna-detect"
CHUNK_LINES = 500
# A redelivered chunk must arrive within the dedup window to be recognised; redelivery follows a
# worker's death after the ack wait (30 s), so two hours leave a wide margin.
DEDUP_WINDOW_SECONDS = 2 * 3600
LEDGER_MAX_AGE_SECONDS = 8 * 24 * 3600


async def ensure_streams(js: JetStreamContext) -> None:
    """Create the events and ledger streams if they do not exist (safe to race with other workers)."""
    wanted = [
        StreamConfig(name=EVENTS_STREAM, subjects=[EVENTS_SUBJECT], retention=RetentionPolicy.WORK_QUEUE),
        StreamConfig(
            name=HITS_STREAM,
            subjects=[f"{HITS_PREFIX}.>"],
            duplicate_window=DEDUP_WINDOW_SECONDS,
            max_age=LEDGER_MAX_AGE_SECONDS,
        ),
    ]
    for config in wanted:
        try:
            await js.stream_info(str(config.name))
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError:
                await js.stream_info(str(config.name))  # another process created it meanwhile


#: Room kept in a message for its headers (the file's name and line) when chunks are cut to the server's maximum
#: payload: the server counts headers and body together, the client checks the body alone.
HEADER_ROOM = 512


def chunks(path: Path, size: int = CHUNK_LINES, max_bytes: int | None = None,
           too_large: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(first line number, lines, payload) for each chunk of a log file; TSV headers lead each one.

    With ``max_bytes`` a chunk is cut early rather than grow past it, and a line that cannot fit even alone
    is left out and told to ``too_large(line number, its size)``: the server would refuse it, and the rest
    of the file is still worth publishing."""
    headers: list[bytes] = []
    head = 0  # the headers' size, each with its newline: kept as they change, not summed again per line
    batch: list[bytes] = []
    used = 0  # the payload's size so far: the headers and the batch's lines, newline-separated
    first = 1
    with open_log(path) as stream:
        for number, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            if line.startswith(b"#"):
                if line.startswith(b"#separator"):
                    headers, head = [], 0
                if not line.startswith(b"#close"):
                    headers.append(line)
                    head += len(line) + 1
                continue
            if not line:
                continue
            if max_bytes is not None:
                if head + len(line) > max_bytes:
                    if too_large is not None:
                        too_large(number, len(line))
                    continue
                if batch and used + 1 + len(line) > max_bytes:
                    yield first, len(batch), b"\n".join(headers + batch)
                    batch = []
            if not batch:
                first = number
                used = head - 1
            batch.append(line)
            used += 1 + len(line)
            if len(batch) >= size:
                yield first, len(batch), b"\n".join(headers + batch)
                batch = []
    if batch:
        yield first, len(batch), b"\n".join(headers + batch)


@dataclass
class Published:
    """What `publish` sent: chunks and lines, and the lines left out as larger than the server takes
    (file label, line number, size in bytes)."""

    chunks: int = 0
    lines: int = 0
    too_large: list[tuple[str, int, int]] = field(default_factory=list)


async def publish(nc: Client, files: Iterable[tuple[Path, str]], *, chunk_lines: int = CHUNK_LINES,
                  in_flight: int = 64, on_chunk: Callable[[int, int], None] | None = None) -> Published:
    """Publish every file's chunks, each within the server's maximum payload; waits for JetStream to store
    each one. ``on_chunk(lines, bytes)`` is told of each chunk as it is sent (a progress display)."""
    js = nc.jetstream()
    await ensure_streams(js)
    pending: list[asyncio.Future[object]] = []
    done = Published()
    for path, label in files:
        room = nc.max_payload - HEADER_ROOM - len(label.encode())

        def skipped(line: int, size: int, label: str = label) -> None:
            done.too_large.append((label, line, size))

        for first, count, payload in chunks(path, chunk_lines, max_bytes=room, too_large=skipped):
            headers = {"Kizuna-File": label, "Kizuna-Line": str(first)}
            pending.append(asyncio.ensure_future(js.publish(EVENTS_SUBJECT, payload, headers=headers)))
            done.chunks += 1
            done.lines += count
            if on_chunk is not None:
                on_chunk(count, len(payload))
            if len(pending) >= in_flight:
                await asyncio.gather(*pending)
                pending = []
    await asyncio.gather(*pending)
    return done


async def notify_change(nc: Client) -> None:
    """Tell every worker that indicators changed (they reload from the node)."""
    await nc.publish(CHANGE_SUBJECT, b"")
    await nc.flush()
