"""The `--yara` side of `kizuna match`: which options go with it, the scan with its progress bar, and
the closing report. The scan itself is `kizuna.detect.yara_scan.YaraScan`."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from kizuna.cli.common import CliError
from kizuna.detect.yara_scan import YaraScan, expand_paths


def check_options(
    inputs: tuple[str, ...], *, observed_data: bool, follow: bool, mapping_name: str | None,
    mapping_file: Path | None, intel_files: tuple[Path, ...], max_lines: int | None,
) -> None:
    """Refuse the log-matching options, and a scan of nothing or of standard input, before any work."""
    clashing = [name for name, given in (("--observed-data", observed_data), ("--follow", follow),
                                         ("--mapping", mapping_name), ("--mapping-file", mapping_file),
                                         ("--zeek-intel", intel_files), ("--max-lines", max_lines)) if given]
    if clashing:
        raise CliError(f"--yara scans files; it does not go with {', '.join(clashing)}", code="usage", exit_code=2)
    if not inputs or "-" in inputs:
        raise CliError("--yara needs files or directories to scan (standard input is not scanned)",
                       code="usage", exit_code=2)


def scan_files(run: YaraScan, inputs: tuple[str, ...], alert_stream: IO[str] | None, *, show_progress: bool) -> None:
    """Scan every file named or found under a directory named; Ctrl-C ends the scan with what was found."""
    files, missing = expand_paths(inputs)
    run.unscanned.extend(missing)
    try:
        for path in _with_progress(files) if show_progress else files:
            for alert in run.scan(path):
                if alert_stream is not None:
                    alert_stream.write(orjson.dumps(alert.as_json()).decode() + "\n")
    except KeyboardInterrupt:
        pass


def _with_progress(files: list[Path]) -> Iterator[Path]:
    """The files, with a bar on standard error: bytes drive the bar and the time left, files and their
    rate are shown beside it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    sizes = [path.stat().st_size if path.exists() else 0 for path in files]
    bar = Progress(TextColumn("scanning"), BarColumn(),
                   TextColumn("{task.fields[files]:,} files  {task.fields[rate]:,.0f} files/s  ETA"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    task = bar.add_task("scanning", total=max(sum(sizes), 1), files=0, rate=0.0)
    started = time.monotonic()
    with bar:
        for count, (path, size) in enumerate(zip(files, sizes, strict=True), 1):
            yield path
            bar.update(task, advance=size, files=count, rate=count / max(time.monotonic() - started, 1e-6))


def report(
    ctx: click.Context, run: YaraScan, summary: dict[str, Any], missing: dict[str, str], *, as_json: bool,
    quiet: bool,
) -> None:
    """The summary, then, when some input could not be scanned, one error line and exit status 1
    (the other files were scanned and their results written)."""
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    elif not quiet:
        lines: Iterable[str] = [
            f"{summary['files']} files scanned with {summary['indicators']['yara']} YARA indicators, "
            f"{summary['hits']} hits, {summary['sightings']} sightings",
            *(f"  rule of {_named(ref, run.names.get(ref))} left out: {why}" for ref, why in run.invalid.items()),
            *(f"  not in the bundle: {ref}: {why}" for ref, why in missing.items()),
        ]
        click.echo("\n".join(lines), err=True)
    if run.unscanned:
        first = run.unscanned[0]
        more = f" (and {len(run.unscanned) - 1} more)" if len(run.unscanned) > 1 else ""
        click.echo(f"kizuna match: could not scan {first.file}: {first.reason}{more}", err=True)
        ctx.exit(1)


def _named(ref: str, name: str | None) -> str:
    """An indicator as a person reads it: its name (quoted, so that no character of it acts on the terminal)
    beside its id, or the id alone when it has no name."""
    return ref if name is None else f"{name!r} ({ref})"
