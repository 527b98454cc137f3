"""`kizuna match`: match indicators against logs or observed-data, emit sightings and alerts."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import LogReader, Mapping, load_mapping, shipped_mappings

_LOCAL_IDENTITY = "identity--" + str(uuid.uuid5(uuid.NAMESPACE_DNS, "kizuna.local"))


def _stix_objects(path: Path) -> Iterator[dict[str, Any]]:
    """Objects from a STIX bundle, a JSON list, or JSON lines."""
    raw = path.read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        for line in raw.splitlines():
            if line.strip():
                yield from _flatten(orjson.loads(line))
        return
    yield from _flatten(data)


def _flatten(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict):
        if data.get("type") == "bundle":
            yield from (o for o in data.get("objects", []) if isinstance(o, dict))
        else:
            yield data


def _follow(stream: IO[bytes], *, idle_timeout: float | None, poll: float = 0.2) -> Iterator[bytes]:
    """Yield lines as they are appended, like `tail -f`.

    Ends on Ctrl-C, or when nothing new arrived for `idle_timeout` seconds (if given). A line is
    yielded only once its newline has arrived, so a writer caught mid-line is never read short.
    """
    pending = b""
    idle_since = time.monotonic()
    while True:
        chunk = stream.readline()
        if chunk:
            idle_since = time.monotonic()
            pending += chunk
            if pending.endswith(b"\n"):
                yield pending
                pending = b""
            continue
        if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
            if pending:
                yield pending
            return
        time.sleep(poll)


@click.command("match")
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--indicators",
    "indicator_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="STIX bundle / JSON lines of indicators (repeatable).",
)
@click.option(
    "--zeek-intel",
    "intel_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Zeek Intel-framework file; each row becomes a STIX indicator (repeatable).",
)
@click.option(
    "--from-collection",
    "source_collections",
    multiple=True,
    help="Load the indicators stored in this node collection (id or alias; repeatable).",
)
@click.option("--mapping", "mapping_name", default=None, help="Force a shipped mapping (default: detect).")
@click.option(
    "--mapping-file",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A user mapping file (JSON) for other log formats.",
)
@click.option("--observed-data", is_flag=True, help="Inputs are STIX observed-data, not logs.")
@click.option("--follow", is_flag=True, help="Keep reading the (single) input file as it grows.")
@click.option(
    "--max-lines",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after reading this many lines in all (with --follow: a bounded run).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --follow: stop when the file has not grown for this many seconds.",
)
@click.option(
    "--window",
    type=int,
    default=3600,
    show_default=True,
    help="Sightings aggregate hits per indicator per window of this many seconds.",
)
@click.option(
    "--identity",
    "identity_id",
    default=None,
    help="Identity recorded in where_sighted_refs (default: the node's identity, if any).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the sightings bundle here (default: standard output).",
)
@click.option(
    "--alerts",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write one JSON alert per hit to this file ('-' for standard output).",
)
@click.option("--collection", default=None, help="Store the sightings in this node collection.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on standard output.")
@click.pass_context
def match_command(
    ctx: click.Context,
    inputs: tuple[str, ...],
    indicator_files: tuple[Path, ...],
    intel_files: tuple[Path, ...],
    source_collections: tuple[str, ...],
    mapping_name: str | None,
    mapping_file: Path | None,
    observed_data: bool,
    follow: bool,
    max_lines: int | None,
    idle_timeout: float | None,
    window: int,
    identity_id: str | None,
    output: Path | None,
    alerts: str | None,
    collection: str | None,
    as_json: bool,
) -> None:
    """Match every indicator against logs (Zeek, Suricata eve.json, ECS) or STIX observed-data.

    Hits are written as a JSON-lines alert stream (--alerts) and aggregated into STIX sightings
    (one per indicator per --window), written as a bundle or stored in a node collection.
    """
    data_dir: Path | None = (ctx.obj or {}).get("data_dir")
    node = _open_node(data_dir) if (collection or source_collections or identity_id is None) else None
    try:
        identity = identity_id or (node.identity().get("id") if node else None) or _LOCAL_IDENTITY
        engine = DetectionEngine(identity, window_seconds=window)
        started = time.perf_counter()
        load_counts: dict[str, int] = {}
        sources: list[Iterator[dict[str, Any]]] = [_stix_objects(p) for p in indicator_files]
        for intel in intel_files:
            sources.append(zeek_intel_indicators(intel.read_text("utf-8").splitlines()))
        for ref in source_collections:
            if node is None:
                raise click.UsageError("--from-collection needs a Kizuna node (see `kizuna init`)")
            target = node.find_collection(ref, None)
            sources.append(orjson.loads(body) for body in node.export_objects(target))
        for source in sources:
            for status, count in engine.load_indicators(source, now=time.time()).items():
                load_counts[status] = load_counts.get(status, 0) + count
        compile_seconds = time.perf_counter() - started

        mappings: dict[str, Mapping] = shipped_mappings()
        if mapping_file is not None:
            mappings.update({m.name: m for m in load_mapping(mapping_file)})
        reader = LogReader(list(mappings.values()), forced=mapping_name)
        matcher = engine.line_matcher(reader)
        alert_stream = _open_alerts(alerts)
        remaining = max_lines
        try:
            for name in inputs or ("-",):
                if remaining is not None and remaining <= 0:
                    break
                if observed_data:
                    stream = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
                    for alert in engine.submit_observed_data(list(_flatten(orjson.loads(stream)))):
                        _write_alert(alert_stream, alert.as_json(), flush=follow)
                    continue
                handle = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
                try:
                    lines: Iterable[bytes] = _follow(handle, idle_timeout=idle_timeout) if follow else handle
                    if remaining is not None:
                        lines = _counted(lines, remaining)
                    before = reader.stats.lines
                    for alert in matcher.alerts(lines):
                        _write_alert(alert_stream, alert.as_json(), flush=follow)
                    if remaining is not None:
                        remaining -= reader.stats.lines - before
                finally:
                    if handle is not sys.stdin.buffer:
                        handle.close()
        except KeyboardInterrupt:
            pass
        finally:
            if alert_stream is not None and alert_stream is not sys.stdout:
                alert_stream.close()

        sightings = engine.aggregator.sightings()
        stored = None
        if collection:
            if node is None:
                raise click.UsageError("--collection needs a Kizuna node (see `kizuna init`)")
            stored = _store(node, collection, sightings)
        bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": sightings}
        if output is not None:
            output.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
        elif not as_json and not collection and alerts != "-":
            sys.stdout.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
        stats = reader.stats
        summary = {
            "indicators": engine.index.stats(),
            "indicator_load": load_counts,
            "compile_seconds": round(compile_seconds, 3),
            "lines": stats.lines,
            "events": stats.events + (engine.events_seen if observed_data else 0),
            "unmapped": stats.skipped,
            "unparsed": stats.problem_count,
            "unparsed_lines": [{"line": p.line, "reason": p.reason} for p in stats.problems[:100]],
            "hits": engine.hits,
            "sightings": len(sightings),
            "stored": stored,
            "output": str(output) if output else None,
        }
        if as_json:
            sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        else:
            click.echo(
                f"{summary['events']} events, {engine.hits} hits, {len(sightings)} sightings; "
                f"{stats.problem_count} unparsable lines"
                + "".join(f"\n  line {p.line}: {p.reason}" for p in stats.problems[:20]),
                err=True,
            )
    finally:
        if node is not None:
            node.close()


def _open_node(data_dir: Path | None) -> Any:
    """The local node, when there is one; matching works without a node too."""
    if data_dir is None or not (data_dir / "kizuna.toml").exists():
        return None
    try:
        from kizuna.core.node import Node
    except ImportError:  # pragma: no cover - core is always shipped with Kizuna
        return None
    return Node.open(data_dir)


def _store(node: Any, collection: str, sightings: list[dict[str, Any]]) -> dict[str, int]:
    target = node.find_collection(collection, None)
    result = node.import_objects(target, sightings).to_taxii()
    return {"success": result.get("success_count", 0), "failure": result.get("failure_count", 0)}


def _open_alerts(target: str | None) -> IO[str] | None:
    if target is None:
        return None
    if target == "-":
        return sys.stdout
    return open(target, "w", encoding="utf-8")  # noqa: SIM115


def _write_alert(stream: IO[str] | None, alert: dict[str, Any], *, flush: bool = False) -> None:
    if stream is not None:
        stream.write(orjson.dumps(alert).decode() + "\n")
        if flush:  # a follower's alerts are wanted as they happen
            stream.flush()


def _counted(lines: Iterable[bytes], limit: int) -> Iterator[bytes]:
    for number, line in enumerate(lines, 1):
        yield line
        if number >= limit:
            return


def register(group: click.Group) -> None:
    group.add_command(match_command)
