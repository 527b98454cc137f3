"""``kizuna backup DEST`` and ``kizuna restore SRC``: a whole node copied out while it serves, and back."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kizuna.cli.common import CliError, config_failure, data_dir_of, emit, json_option, quiet_option
from kizuna.cli.progress import progress_wanted
from kizuna.config import ConfigError, absolute_store_url, load_config
from kizuna.recovery import BackupError, back_up, restore
from kizuna.recovery.serving import ServingConflict, restoring


@contextmanager
def _audit_progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A bar over the audit records being verified, on a terminal only."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("audit records"), TimeElapsedColumn(), console=Console(file=sys.stderr),
                   transient=True)
    task = bar.add_task(description, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _summary(verb: str, where: str, result: dict[str, Any], recorded_in: str) -> str:
    return (f"{verb} {where}\n  {result['versions']} object versions, audit chain verified "
            f"({result['audit_records']} records, head {result['audit_head'][:16]}…)\n"
            f"  recorded in {recorded_in} audit chain as record {result['audit_seq']}")


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@quiet_option
@json_option
@click.pass_context
def backup_command(ctx: click.Context, dest: Path, quiet: bool, as_json: bool) -> None:
    """Copy the node, while it keeps serving, to the new directory DEST.

    SQLite is copied with its online backup API, PostgreSQL with pg_dump; the copy's audit chain is
    verified and its object versions counted before DEST appears. The node's audit chain then records
    the backup (where, and the copy's versions and audit head).
    """
    try:
        config = load_config(data_dir_of(ctx))
    except ConfigError as exc:
        raise config_failure(exc) from None
    try:
        with _audit_progress(progress_wanted(as_json, quiet), "checking the copy") as hook:
            manifest = back_up(config, dest.absolute(), hook)
    except (BackupError, ConfigError) as exc:
        raise CliError(str(exc), code="backup") from None
    emit(as_json, {"path": str(dest.absolute()), **manifest}, _summary("Backed up the node to", str(dest), manifest,
                                                                              "the node's"))


@click.command("restore")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--store", "store_url", default=None,
              help="Store to restore into: sqlite:///absolute/path.db (or sqlite:file.db in the data directory), "
                   "or postgresql://… for a PostgreSQL "
                   "backup (default: kizuna.db in the data directory, or the database the backup came from).")
@click.option("--force", is_flag=True, help="Replace the node (or database) already there with the backup.")
@quiet_option
@json_option
@click.pass_context
def restore_command(ctx: click.Context, src: Path, store_url: str | None, force: bool, quiet: bool,
                    as_json: bool) -> None:
    """Make the data directory the node saved in the backup SRC (stop the node first).

    The restored store is checked like the backup was: the audit chain must verify and the object
    versions and audit records must match the backup's manifest. The restored node's audit chain then
    records which backup it was restored from.
    """
    data_dir = data_dir_of(ctx)
    try:
        with restoring(data_dir), \
                _audit_progress(progress_wanted(as_json, quiet), "checking the restored node") as hook:
            # sqlite:relative.db is taken inside the data directory, as `kizuna init --store` takes it.
            url = absolute_store_url(store_url, data_dir.absolute()) if store_url else None
            result = restore(src.absolute(), data_dir, url, force, hook)
    except (BackupError, ConfigError) as exc:
        raise CliError(str(exc), code="backup") from None
    except ServingConflict as exc:
        raise CliError(str(exc), code="serving") from None
    emit(as_json, result, _summary("Restored the node in", str(data_dir), result,
                                                    "the restored node's"))


def register(group: click.Group) -> None:
    group.add_command(backup_command)
    group.add_command(restore_command)
