"""`kizuna detect`: the detection tier on NATS JetStream (publish log lines, run matcher workers).

`kizuna detect publish LOG… --nats URL` feeds log files into the events stream; `kizuna detect
worker --nats URL --from-collection C --collection S` matches them against the node's indicators
and stores sightings; `kizuna detect notify --nats URL` tells running workers that indicators
changed. Stream layout and guarantees: kizuna/detect/stream.py, worker.py and docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from kizuna.cli.common import CliError, FiniteFloat, count, emit, node_of
from kizuna.cli.progress import Progress, progress_wanted
from kizuna.detect.mappings import shipped_mappings

if TYPE_CHECKING:
    from kizuna.detect.stream import Published

_SCHEMES = {"nats", "tls", "ws", "wss"}


def _nats_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise CliError(f"--nats must be a NATS server URL such as nats://127.0.0.1:4222, not {url[:80]!r}",
                       code="usage", exit_code=2)
    return url


async def _connect(url: str) -> Any:
    import nats  # imported here: only the detection tier needs the NATS client

    seen: list[BaseException] = []

    async def note(exc: BaseException) -> None:
        # The client's default reports each failed attempt with a traceback on stderr; the command
        # reports the last one in its own line instead.
        seen.append(exc)

    try:
        # Two attempts, then NoServersError: with max_reconnect_attempts=0 the client would retry a
        # server that refuses the connection for ever, whatever allow_reconnect says.
        return await nats.connect(url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=1,
                                  reconnect_time_wait=0.5, error_cb=note)
    except Exception as exc:  # the client raises several unrelated types for "could not connect"
        cause = seen[-1] if seen else exc
        raise CliError(f"cannot connect to NATS at {url}: {cause or type(cause).__name__}", code="nats") from None


@click.group("detect")
def detect_group() -> None:
    """Matcher workers on NATS JetStream: feed log lines, match them, store sightings."""


@detect_group.command("publish")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--nats", "url", required=True, help="NATS server URL, e.g. nats://127.0.0.1:4222.")
@click.option("--chunk-lines", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Log lines per JetStream message (the unit a worker takes and acknowledges).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on standard output.")
def publish_command(logs: tuple[Path, ...], url: str, chunk_lines: int, as_json: bool) -> None:
    """Publish log files (Zeek TSV or JSON, Suricata eve.json, ECS) to the events stream, in chunks of
    lines; returns once JetStream has stored every chunk."""
    from kizuna.detect.stream import publish

    url = _nats_url(url)
    total = sum(path.stat().st_size for path in logs)

    async def go(bar: Progress) -> Published:
        nc = await _connect(url)
        try:
            return await publish(nc, [(path, str(path)) for path in logs], chunk_lines=chunk_lines,
                                 on_chunk=bar.counted)
        finally:
            await nc.close()

    with Progress("publish", total=total or None, unit="bytes", noun="lines",
                  enabled=progress_wanted(as_json, False)) as bar:
        done = asyncio.run(go(bar))
    published = f"published {count(done.lines, 'line')} of {count(len(logs), 'file')} in {count(done.chunks, 'chunk')}"
    if done.too_large:
        # The rest is published; the run still fails, so a pipeline notices the lines no worker will see.
        (label, line, size), more = done.too_large[0], len(done.too_large) - 1
        also = f" (and {count(more, 'more line')})" if more else ""
        raise CliError(f"{label}:{line}: the line is {size:,} bytes, larger than the server's maximum payload, "
                       f"and was left out{also}; {published}", code="too-large", file=label, line=line)
    emit(as_json, {"chunks": done.chunks, "lines": done.lines, "files": len(logs)}, published)


@detect_group.command("notify")
@click.option("--nats", "url", required=True, help="NATS server URL, e.g. nats://127.0.0.1:4222.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on standard output.")
def notify_command(url: str, as_json: bool) -> None:
    """Tell running workers that indicators changed, so they reload them now (they also notice a
    changed collection by themselves within a few seconds)."""
    from kizuna.detect.stream import notify_change

    url = _nats_url(url)

    async def go() -> None:
        nc = await _connect(url)
        try:
            await notify_change(nc)
        finally:
            await nc.close()

    asyncio.run(go())
    emit(as_json, {"notified": True}, "workers notified")


@detect_group.command("worker")
@click.option("--nats", "url", required=True, help="NATS server URL, e.g. nats://127.0.0.1:4222.")
@click.option("--from-collection", "source_collections", multiple=True, required=True,
              help="Match the indicators stored in this node collection (id or alias; repeatable).")
@click.option("--collection", "-c", required=True,
              help="Store the sightings in this node collection (a chunk is acknowledged once they are stored, "
                   "so a worker that stored nothing would consume the stream for nothing).")
@click.option("--window", type=click.IntRange(1, 31 * 86400), default=3600, show_default=True,
              help="Sightings aggregate hits per indicator per window of this many seconds.")
@click.option("--batch", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Chunks fetched, matched, stored and acknowledged together.")
@click.option("--ack-wait", type=FiniteFloat(0.5, 3600), default=30.0, show_default=True,
              help="Seconds before JetStream redelivers a chunk a worker took and did not acknowledge "
                   "(fixed when the consumer is first created).")
@click.option("--until-drained", is_flag=True,
              help="Stop once no chunk is waiting or out with a worker (default: run until stopped).")
@click.option("--max-chunks", type=click.IntRange(1), default=None, help="Stop after this many chunks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on standard output.")
@click.pass_context
def worker_command(ctx: click.Context, url: str, source_collections: tuple[str, ...], collection: str,
                   window: int, batch: int, ack_wait: float, until_drained: bool, max_chunks: int | None,
                   as_json: bool) -> None:
    """Consume log chunks from the events stream with the shared durable consumer, match them against
    the indicators of --from-collection and store sightings in --collection. Start several to share
    the load; a chunk is acknowledged only after its sightings are stored, and counts are exact
    across workers and redeliveries. Stops on SIGTERM or Ctrl-C after the batch in hand. A worker
    refuses to start without an indicator to match; one whose indicators are all revoked, expired or
    deleted while it runs takes no chunks until there are some again (a line on standard error each
    way), and one run with --until-drained or --max-chunks stops, refused, instead."""
    from kizuna.detect.run import NothingToMatch
    from kizuna.detect.worker import DetectWorker

    url = _nats_url(url)
    node = node_of(ctx)
    sources = [node.find_collection(ref, None) for ref in source_collections]
    target = node.find_collection(collection, None)
    identity = node.identity().get("id", "")
    worker = DetectWorker(node, sources, target, list(shipped_mappings().values()), identity_id=identity,
                          window_seconds=window, batch=batch, ack_wait=ack_wait,
                          fault=os.environ.get("KIZUNA_DETECT_FAULT"),
                          notify=lambda line: click.echo(f"kizuna detect worker: {line}", err=True))

    async def go() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        from nats.errors import Error as NatsError

        nc = await _connect(url)
        try:
            return await worker.run(nc, stop, until_drained=until_drained, max_chunks=max_chunks)
        except NothingToMatch as exc:  # refused before taking a chunk: they stay for a worker that can match
            raise CliError(str(exc), code=exc.code) from None
        except NatsError as exc:  # the server went away or refused a request: unacked chunks are redelivered
            raise CliError(f"NATS failed: {type(exc).__name__} {exc}".strip(), code="nats") from None
        finally:
            await nc.close()

    stats = asyncio.run(go())
    summary = {**stats.as_json(), "indicators": worker.indicator_load}
    unread = stats.unparsable + stats.unmapped
    emit(as_json, summary, f"{count(stats.chunks, 'chunk')}, {count(stats.lines, 'line')}, "
                           f"{count(stats.hits, 'hit')}, {count(stats.sightings_stored, 'sighting version')} stored"
                           + (f"; {count(unread, 'line')} could not be read ({stats.unparsable} unparsable, "
                              f"{stats.unmapped} of no known format)" if unread else ""))


def register(group: click.Group) -> None:
    group.add_command(detect_group)
