"""`kizuna match`: match indicators against logs or observed-data, emit sightings and alerts.

The command checks everything it can before doing any work (inputs exist, outputs can be written,
collections exist), then drives a `kizuna.detect.run.MatchRun`. Outputs are written under a
temporary name and moved into place only when the run succeeds; a run that matched nothing usable
(no indicators that can match, no line of a known format) fails rather than writing empty results.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import orjson

from kizuna.cli import match_yara
from kizuna.cli.common import CliError, FiniteFloat, terminate_as_interrupt
from kizuna.cli.ops_watch import operation_watch
from kizuna.core.bulk_import import set_aside_long_lived
from kizuna.core.errors import AdminError
from kizuna.core.principal import NODE_ADMIN
from kizuna.detect.bundle import LOCAL_IDENTITY_ID
from kizuna.detect.files import PendingFile, check_writable, open_log, read_stix_file, same_file
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import Mapping, load_mapping, shipped_mappings
from kizuna.detect.run import MatchRun, NothingToMatch
from kizuna.detect.sightings import Alert, input_key
from kizuna.detect.yara_scan import YaraScan
from kizuna.stix.validation import is_stix_id

if TYPE_CHECKING:
    from kizuna.core.node import Node
    from kizuna.store.base import Collection


def _follow(stream: IO[bytes], *, idle_timeout: float | None, poll: float = 0.2,
            path: Path | None = None) -> Iterator[bytes]:
    """Yield lines as they are appended, like `tail -F`.

    Ends on Ctrl-C or SIGTERM, or when nothing new arrived for `idle_timeout` seconds (if given). A line is
    yielded only once its newline has arrived, so a writer caught mid-line is never read short. With the
    file's ``path``, a log rotated under it is followed on: renamed away (Zeek, logrotate), the new file at
    the path is read from its start once the old one is read to its end; truncated in place (copytruncate),
    it is read again from its start.
    """
    pending = b""
    idle_since = time.monotonic()
    current = stream
    try:
        while True:
            chunk = current.readline()
            if chunk:
                idle_since = time.monotonic()
                pending += chunk
                if pending.endswith(b"\n"):
                    yield pending
                    pending = b""
                continue
            if path is not None:
                rotated = _rotated(current, path)
                if rotated is not None:
                    if current is not stream:
                        current.close()
                    current = rotated
                    continue
            if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                if pending:
                    yield pending
                return
            time.sleep(poll)
    finally:
        if current is not stream:
            current.close()


def _rotated(stream: IO[bytes], path: Path) -> IO[bytes] | None:
    """The stream to go on with when the log at ``path`` was rotated since ``stream`` was opened, or None."""
    try:
        now = path.stat()
    except OSError:
        return None  # renamed away and not made again yet: the next poll looks again
    held = os.fstat(stream.fileno())
    if (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
        return path.open("rb")  # a new file at the path; the old one was read to its end
    if now.st_size < stream.tell():
        stream.seek(0)  # truncated in place: what is there now was written after the cut
        return stream
    return None


@click.command("match")
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))
@click.option(
    "--indicators",
    "indicator_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="STIX bundle / JSON lines of indicators (repeatable).",
)
@click.option(
    "--zeek-intel",
    "intel_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
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
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A mapping file (JSON) describing another log format; see docs/detection.md and examples/mappings/.",
)
@click.option("--observed-data", is_flag=True, help="Inputs are STIX observed-data, not logs.")
@click.option(
    "--yara",
    is_flag=True,
    help="Inputs are files or directories (walked recursively) to scan with the YARA indicators "
    "(pattern_type yara), not logs.",
)
@click.option("--follow", is_flag=True, help="Keep reading the (single) input file as it grows.")
@click.option(
    "--max-lines",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after reading this many lines in all (with --follow: a bounded run).",
)
@click.option(
    "--idle-timeout",
    type=FiniteFloat(min=0),
    default=None,
    help="With --follow: stop when the file has not grown for this many seconds.",
)
@click.option(
    "--window",
    type=click.IntRange(1, 31 * 86400),
    default=3600,
    show_default=True,
    help="Sightings aggregate hits per indicator per window of this many seconds.",
)
@click.option(
    "--identity",
    "identity_id",
    default=None,
    metavar="identity--UUID",
    callback=lambda _ctx, _param, value: _identity_id(value),
    help="Identity id recorded in where_sighted_refs (default: the node's identity, if any).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Write the sightings bundle (with the indicators and identities it names) here ('-' for standard "
    "output); default: standard output, except with --json, --collection or --alerts -, where only -o keeps it.",
)
@click.option(
    "--alerts",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write one JSON alert per hit to this file ('-' for standard output).",
)
@click.option("--collection", "-c", default=None, help="Store the sightings in this node collection.")
@click.option("--operation", default=None,
              help="Also judge the logs' domains, URLs and addresses against this operation's protected assets "
              "and lookalikes, in the same pass (as `kizuna ops scan-logs` does); hits are stored in the "
              "operation's intel collection and show in `kizuna ops alerts`.")
@click.option("--include-warninglisted", is_flag=True,
              help="Also match indicators flagged at import as on a MISP warninglist (skipped by default).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on standard output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary on standard error.")
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
    yara: bool,
    follow: bool,
    max_lines: int | None,
    idle_timeout: float | None,
    window: int,
    identity_id: str | None,
    output: Path | None,
    alerts: str | None,
    collection: str | None,
    operation: str | None,
    include_warninglisted: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Match every indicator against logs (Zeek, Suricata eve.json, ECS) or STIX observed-data, or scan
    files with the YARA indicators (--yara).

    Hits are written as a JSON-lines alert stream (--alerts), each naming its input file and line
    (or YARA rule), and aggregated into STIX sightings (one per indicator per --window), written as a
    bundle that also holds the indicators and identities they name, or stored in a node collection.
    """
    data_dir: Path | None = (ctx.obj or {}).get("data_dir")
    if idle_timeout is not None and not follow:
        raise CliError("--idle-timeout bounds a --follow run; without --follow the run ends with its inputs",
                       code="usage", exit_code=2)
    if yara:
        match_yara.check_options(inputs, observed_data=observed_data, follow=follow, mapping_name=mapping_name,
                                 mapping_file=mapping_file, intel_files=intel_files, max_lines=max_lines)
    else:
        _check_inputs(inputs, observed_data, follow)
    bundle_out = None if output == Path("-") else output  # the file the bundle goes to, if any
    _check_stdout((("-o", bundle_out is None and output is not None), ("--alerts", alerts == "-")), as_json)
    _check_distinct(inputs, (("--indicators", indicator_files), ("--zeek-intel", intel_files),
                             ("--mapping-file", (mapping_file,) if mapping_file else ())),
                    (("-o", bundle_out), ("--alerts", Path(alerts) if alerts not in (None, "-") else None)))
    if bundle_out is not None and (problem := check_writable(bundle_out, "output")):
        raise CliError(problem, code="io", file=str(output))
    if alerts not in (None, "-") and (problem := check_writable(Path(alerts), "alerts file")):
        raise CliError(problem, code="io", file=alerts)
    if operation is not None and (yara or observed_data):
        raise CliError("--operation judges log lines; it cannot be used with --yara or --observed-data",
                       code="usage", exit_code=2)
    node = _open_node(data_dir) if (collection or source_collections or operation or identity_id is None) else None
    pending: list[PendingFile] = []
    intel_skipped: list[tuple[str, int, str]] = []  # Zeek Intel rows that made no indicator: file, line, why
    try:
        store_in: Any = None
        sources: list[Iterator[bytes]] = []
        if collection or source_collections or operation:
            if node is None:
                option = "--collection" if collection else "--from-collection" if source_collections else "--operation"
                raise CliError(f"{option} needs a Kizuna node (see `kizuna init`)", code="usage", exit_code=2)
            # Resolved before any work: a collection that does not exist fails the run at once.
            store_in = _collection(node, collection, "--collection") if collection else None
            # export_objects is lazy: each collection is read when its indicators are loaded.
            sources = [node.export_objects(_collection(node, ref, "--from-collection")) for ref in source_collections]
        identity = identity_id or (node.identity().get("id") if node else None) or LOCAL_IDENTITY_ID
        watch = operation_watch(node, operation) if operation is not None and node is not None else None
        run: MatchRun | YaraScan
        if yara:
            run = YaraScan(identity, window=window)
        else:
            run = MatchRun(identity, list(_mappings(mapping_file).values()), forced=mapping_name, window=window,
                           include_warninglisted=include_warninglisted, watch=watch.log if watch else None)
        if node is not None:
            run.bundle.remember(node.identity())
        set_aside_long_lived()  # the modules and the node; the index below, once built
        for path in indicator_files:
            run.load(obj for _line, obj in read_stix_file(path))
        for intel in intel_files:
            raw = intel.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CliError(f"not UTF-8 text ({exc.reason})", code="encoding", file=str(intel),
                               line=raw.count(b"\n", 0, exc.start) + 1) from None
            skipped: list[tuple[int, str]] = []
            run.load(zeek_intel_indicators(text.splitlines(), skipped=skipped))
            intel_skipped += [(str(intel), number, why) for number, why in skipped]
        for exported in sources:
            run.load(orjson.loads(body) for body in exported)
        run.require_indicators()
        set_aside_long_lived()  # the index lives as long as the run: collections need not walk it per batch

        alert_stream, direct = _alert_stream(alerts, follow, pending)
        watched = sys.stderr.isatty() and not (as_json or quiet)
        progress = _Progress(enabled=watched and not (follow or observed_data or yara))
        try:
            if isinstance(run, YaraScan):
                match_yara.scan_files(run, inputs, alert_stream, show_progress=watched)
            else:
                _match_inputs(run, inputs, observed_data, follow, max_lines, idle_timeout, alert_stream, progress)
        finally:
            progress.close()
            if direct is not None:
                direct.close()
        if isinstance(run, YaraScan):
            run.require_files()
            sightings = run.aggregator.sightings()
        else:
            run.require_events(observed_data)
            sightings = run.engine.aggregator.sightings()
        bundle, missing = run.bundle.build(sightings, f"bundle--{uuid.uuid4()}")
        shares = run.aggregator.shares() if isinstance(run, YaraScan) else run.engine.aggregator.shares()
        stored = _store(node, store_in, sightings, shares) if store_in is not None else None
        watch_hits = watch.store() if watch is not None else None
        if bundle_out is not None:
            sightings_file = PendingFile(bundle_out, binary=True)
            pending.append(sightings_file)
            sightings_file.stream.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
        elif output is not None or (not as_json and not collection and alerts != "-"):
            sys.stdout.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
        for done in pending:
            done.commit()
        pending.clear()
    except NothingToMatch as exc:
        if exc.code == "no-indicators" and intel_skipped:  # say why the intel file's rows made none
            file, line, why = intel_skipped[0]
            raise CliError(f"{exc}; {len(intel_skipped)} Zeek Intel row(s) made no indicator, the first: {why}",
                           code=exc.code, file=file, line=line) from None
        raise CliError(str(exc), code=exc.code, file=exc.file, line=exc.line) from None
    finally:
        for unfinished in pending:
            unfinished.discard()
        if node is not None:
            node.close()

    summary = run.summary(len(sightings), observed_data)
    summary.update(stored=stored, output=str(output) if output else None,
                   bundle_objects=len(bundle["objects"]), bundle_missing=missing)
    if intel_files:
        summary["intel_rows_skipped"] = {"count": len(intel_skipped),
                                         "first": [f"{f}:{n}: {why}" for f, n, why in intel_skipped[:20]]}
    if watch_hits is not None:
        summary["operation"] = {"operation": operation, "hits": watch_hits}
    if isinstance(run, YaraScan):
        match_yara.report(ctx, run, summary, missing, as_json=as_json, quiet=quiet)
        _report_refused(ctx, stored, collection)
        return
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    elif not quiet:
        stats = run.reader.stats
        read = "" if observed_data else f"{summary['lines']} lines read: "
        text = (f"{read}{summary['events']} events, {summary['hits']} hits, {summary['sightings']} sightings; "
                f"{stats.problem_count} unparsable" + ("" if observed_data else
                                                       f" lines, {stats.skipped} of no known format"))
        if intel_skipped:
            text += f"\n  {len(intel_skipped)} Zeek Intel row(s) made no indicator:" + "".join(
                f"\n    {f}:{n}: {why}" for f, n, why in intel_skipped[:20])
        if summary["warninglisted_skipped"]:
            text += (f"\n  {summary['warninglisted_skipped']} indicators on warninglists skipped"
                     " (--include-warninglisted matches them too)")
        for first, count, what in ((stats.first_unmapped, stats.skipped, "record(s) of no known format"),
                                   (stats.first_unlike, stats.unlike, "record(s) the forced --mapping does not fit")):
            if first is not None:
                text += f"\n  {count} {what}; the first: {first.file}:{first.line}: {first.reason}"
        text += "".join(f"\n  {p.file}:{p.line}: {p.reason}" for p in stats.problems[:20])
        text += "".join(f"\n  not in the bundle: {ref}: {why}" for ref, why in missing.items())
        if watch_hits is not None:
            text += f"\n{len(watch_hits)} values hit the watchlist of {operation}" + "".join(
                f"\n  {h['count']:>6}  {h['rule']:<12} {h['value']}  (protected: {h['asset']})" for h in watch_hits)
        click.echo(text, err=True)
    _report_refused(ctx, stored, collection)


def _report_refused(ctx: click.Context, stored: dict[str, Any] | None, collection: str | None) -> None:
    """After the summary: when the collection refused sightings, one line naming the first and its reason,
    and exit status 1 (the sightings it took are stored, the outputs written)."""
    if not stored or not stored["failures"]:
        return
    first, more = stored["failures"][0], len(stored["failures"]) - 1
    click.echo(f"kizuna match: {len(stored['failures'])} of {stored['success'] + stored['failure']} sightings "
               f"could not be stored in {collection}: {first['id']}: {first['message']}"
               + (f" (and {more} more)" if more else ""), err=True)
    ctx.exit(1)


def _identity_id(value: str | None) -> str | None:
    """``--identity`` as given, when it is what where_sighted_refs holds: a STIX identity id."""
    if value is not None and not (value.startswith("identity--") and is_stix_id(value)):
        raise click.BadParameter(f"{value!r} is not a STIX identity id (identity--<UUID>)")
    return value


def _alert_stream(
    alerts: str | None, follow: bool, pending: list[PendingFile]
) -> tuple[IO[str] | None, IO[str] | None]:
    """(where alerts are written, the file to close at the end when it is written directly).

    Alerts normally go to a pending file, renamed into place when the run succeeds; a follower's go
    straight to their file, since whoever tails it wants them as they happen.
    """
    if alerts is None:
        return None, None
    if alerts == "-":
        return sys.stdout, None
    if follow:
        direct = open(alerts, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
        return direct, direct
    pending.append(PendingFile(Path(alerts)))
    return pending[-1].stream, None


def _check_distinct(inputs: tuple[str, ...], read: Iterable[tuple[str, Iterable[Path]]],
                    written: Iterable[tuple[str, Path | None]]) -> None:
    """Refuse, before anything is read, an output that is one of the files read or another output: the run
    would replace its own input with its results, or write one output over the other."""
    sources = [("input", Path(name)) for name in inputs if name != "-"]
    sources += [(option, path) for option, paths in read for path in paths]
    outputs = [(option, path) for option, path in written if path is not None]
    for number, (option, path) in enumerate(outputs):
        for other, earlier in outputs[:number]:
            if same_file(path, earlier):
                raise CliError(f"{other} and {option} name the same file: give each its own", code="usage",
                               file=str(path))
        for what, source in sources:
            if same_file(path, source):
                raise CliError(f"{option} {path} is the {what} file {source}: the run would replace what it reads",
                               code="usage", file=str(path))


def _check_stdout(outputs: Iterable[tuple[str, bool]], as_json: bool) -> None:
    """Refuse two outputs on standard output, or one beside --json's summary: whatever reads it could not tell
    the alerts, the bundle and the summary apart."""
    on_stdout = [option for option, dash in outputs if dash]
    if len(on_stdout) > 1:
        raise CliError(f"{' and '.join(f'{option} -' for option in on_stdout)} both write to standard output: "
                       "give one of them a file", code="usage")
    if on_stdout and as_json:
        raise CliError(f"--json prints its summary on standard output: give {on_stdout[0]} a file, not -",
                       code="usage")


def _collection(node: Node, ref: str, option: str) -> Collection:
    """The collection an option names; a failure says which option named it."""
    try:
        return node.find_collection(ref, None)
    except AdminError as exc:
        raise CliError(f"{option}: {exc}", code="not-found") from None


def _check_inputs(inputs: tuple[str, ...], observed_data: bool, follow: bool) -> None:
    if follow and len(inputs) != 1:
        raise CliError(f"--follow reads one growing file; {len(inputs) or 'no'} inputs were given",
                       code="usage", exit_code=2)
    what = "observed-data file" if observed_data else "log file"
    if not inputs and sys.stdin.isatty():
        # Standard input is read when no file is named: at a terminal that is a wait for typing, not a log.
        raise CliError(f"give the {what}s to match (or - to read standard input)", code="usage", exit_code=2)
    for name in inputs:
        if name == "-":
            continue
        path = Path(name)
        if not path.exists():
            raise CliError(f"{what} {name} does not exist", code="io", file=name)
        if not path.is_file():
            raise CliError(f"{what} {name} is not a file", code="io", file=name)


def _mappings(mapping_file: Path | None) -> dict[str, Mapping]:
    mappings: dict[str, Mapping] = shipped_mappings()
    if mapping_file is not None:
        try:
            loaded = load_mapping(mapping_file)
            shadowing = [m.name for m in loaded if m.name in mappings]
            if shadowing:
                raise CliError(f"mapping {shadowing[0]!r} is the name of a shipped mapping; give yours another name",
                               code="mapping", file=str(mapping_file))
            mappings.update({m.name: m for m in loaded})
        except json.JSONDecodeError as exc:
            raise CliError(f"mapping file is not valid JSON: {exc.msg} (column {exc.colno})", code="mapping",
                           file=str(mapping_file), line=exc.lineno) from None
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise CliError(f"mapping file {mapping_file} is not valid: {reason}", code="mapping",
                           file=str(mapping_file)) from None
    return mappings


def _match_inputs(
    run: MatchRun,
    inputs: tuple[str, ...],
    observed_data: bool,
    follow: bool,
    max_lines: int | None,
    idle_timeout: float | None,
    alert_stream: IO[str] | None,
    progress: _Progress,
) -> None:
    # A follower runs until stopped; `kill` (SIGTERM) stops it as Ctrl-C does, with what it matched kept.
    stopping = terminate_as_interrupt() if follow else contextlib.nullcontext()
    try:
        with stopping:
            _match_each(run, inputs, observed_data, follow, max_lines, idle_timeout, alert_stream, progress)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a run (a --follow run in particular) with what was matched so far


def _match_each(
    run: MatchRun,
    inputs: tuple[str, ...],
    observed_data: bool,
    follow: bool,
    remaining: int | None,
    idle_timeout: float | None,
    alert_stream: IO[str] | None,
    progress: _Progress,
) -> None:
    for name in inputs or ("-",):
        if remaining is not None and remaining <= 0:
            break
        label = "<stdin>" if name == "-" else name
        if observed_data:
            if name == "-":  # spooled to a file: STIX input is read twice (JSON lines or bundle?)
                with tempfile.TemporaryDirectory() as spool:
                    path = Path(spool) / "stdin.json"
                    held = sys.stdin.buffer.read()
                    path.write_bytes(held)
                    found = run.observed_data_alerts(path, label, f"stdin:{hashlib.sha256(held).hexdigest()}")
            else:
                found = run.observed_data_alerts(Path(name), label)
            for alert in found:
                _write_alert(alert_stream, alert, flush=follow)
            continue
        handle = sys.stdin.buffer if name == "-" else open_log(Path(name))
        compressed = isinstance(handle, gzip.GzipFile)
        try:
            if follow and compressed:
                raise CliError(f"{name} is compressed (gzip): a growing log is followed as text", code="usage",
                               file=name)
            lines: Iterable[bytes] = (_follow(handle, idle_timeout=idle_timeout,
                                              path=None if name == "-" else Path(name)) if follow else handle)
            if remaining is not None:
                lines = _counted(lines, remaining)
            if name != "-":
                # A compressed log's lines outgrow its size on disk: its bar is driven by lines alone.
                lines = progress.track(label, lines, 0 if compressed else Path(name).stat().st_size)
            before = run.reader.stats.lines
            digest = hashlib.sha256() if name == "-" else None
            if digest is not None:  # standard input is named by what it held
                lines = _hashed(lines, digest)
            for alert in run.log_alerts(label, lines):
                _write_alert(alert_stream, alert, flush=follow)
            run.engine.aggregator.name_input(f"stdin:{digest.hexdigest()}" if digest is not None
                                             else input_key(Path(name)))
            if remaining is not None:
                remaining -= run.reader.stats.lines - before
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()


class _Progress:
    """A progress bar on standard error for each log file: bytes read drive the bar and the ETA,
    lines read and their rate are shown beside it. Off unless standard error is a terminal."""

    _EVERY = 2048  # lines between updates: keeps the bar's cost out of the matching loop

    def __init__(self, *, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[lines]:,} lines  {task.fields[rate]:,.0f} lines/s  ETA"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self._bar.start()

    def track(self, label: str, lines: Iterable[bytes], total: int) -> Iterable[bytes]:
        if self._bar is None:
            return lines
        return self._tracked(label, lines, total)

    def _tracked(self, label: str, lines: Iterable[bytes], total: int) -> Iterator[bytes]:
        bar = self._bar
        # No size to go by (a compressed log): rich shows the bar as running, without an end.
        task = bar.add_task(label, total=max(total, 1) if total else None, lines=0, rate=0.0)
        started, done, count = time.monotonic(), 0, 0
        try:
            for line in lines:
                count += 1
                done += len(line)
                if count % self._EVERY == 0:
                    rate = count / max(time.monotonic() - started, 1e-6)
                    bar.update(task, completed=done, lines=count, rate=rate)
                yield line
        finally:
            rate = count / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=max(done, total), lines=count, rate=rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _open_node(data_dir: Path | None) -> Any:
    """The local node, when there is one; matching works without a node too."""
    if data_dir is None or not (data_dir / "kizuna.toml").exists():
        return None
    try:
        from kizuna.core.node import Node
    except ImportError:  # pragma: no cover - core is always shipped with Kizuna
        return None
    return Node.open(data_dir)


def _store(node: Any, target: Any, sightings: list[dict[str, Any]], shares: list[Any]) -> dict[str, Any]:
    """Store the run's sightings as the totals of every input matched into them (core/sighting_shares.py);
    the counts, and each refused sighting with the store's reason."""
    report = node.store_sightings(NODE_ADMIN, target, sightings, shares) if sightings else None
    result = report.to_taxii() if report is not None else {}
    failures = [{"id": f.get("id"), "message": f.get("message")} for f in result.get("failures", [])]
    return {"success": result.get("success_count", 0), "failure": result.get("failure_count", 0),
            "failures": failures}


def _hashed(lines: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for line in lines:
        digest.update(line)
        yield line


def _write_alert(stream: IO[str] | None, alert: Alert, *, flush: bool = False) -> None:
    if stream is not None:
        stream.write(orjson.dumps(alert.as_json()).decode() + "\n")
        if flush:  # a follower's alerts are wanted as they happen
            stream.flush()


def _counted(lines: Iterable[bytes], limit: int) -> Iterator[bytes]:
    for number, line in enumerate(lines, 1):
        yield line
        if number >= limit:
            return


def register(group: click.Group) -> None:
    group.add_command(match_command)
