"""``kizuna import`` and ``kizuna export``: STIX in and out of a collection, streamed."""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import click

from kizuna.cli.common import CliError, emit, json_option, node_of, output_stream, quiet_option
from kizuna.cli.progress import CountingReader, Progress, progress_wanted
from kizuna.core.node import Node
from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

ACCEPTED_INPUT = "a STIX bundle, a TAXII envelope, a JSON list of objects, one STIX object or JSON lines"


def _import_file(node: Node, path: Path, collection_ref: str, api_root: str | None,
                 show_progress: bool) -> dict[str, Any]:
    target = node.find_collection(collection_ref, api_root)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line
    broken: list[BundleSyntaxError] = []

    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(exc.strerror or str(exc), code="io", file=str(path)) from None
    with raw, Progress(f"import {path.name}", total=path.stat().st_size or None, unit="bytes",
                       enabled=show_progress) as progress:

        def objects() -> Iterator[Any]:
            # A syntax error ends the input here; what came before it is still stored (and counted).
            try:
                stream = cast(BinaryIO, CountingReader(raw, progress))
                for line, obj in iter_bundle_objects(stream, str(path)):
                    lines.append(line)
                    progress.object_done()
                    yield obj
            except BundleSyntaxError as exc:
                broken.append(exc)

        report = node.import_objects(target, objects())
    failures = [
        {"line": lines[pos], "id": f["id"], "message": f["message"]}
        for pos, f in zip(report.failure_positions, report.failures, strict=True)
    ]
    stored = report.success_count - report.duplicate_count
    if broken:
        error = broken[0]
        before = (f"{stored} objects before this point were stored, {report.duplicate_count} were already "
                  f"stored, {len(failures)} were rejected") if report.total else "no objects before this point"
        raise CliError(f"{error.message} ({before})", code="syntax", file=error.name, line=error.line)
    if report.total == 0:
        raise CliError(f"no STIX objects to import; expected {ACCEPTED_INPUT}", code="empty", file=str(path))
    return {"collection": target.id, "total": report.total, "stored": stored,
            "duplicates": report.duplicate_count, "rejected": len(failures),
            "added_by_node": report.node_added, "normalised": report.normalisation_count,
            "failed": len(failures), "failures": failures}


def _import_text(file: Path, result: dict[str, Any]) -> str:
    summary = (f"{file}: {result['total']} objects read: {result['stored']} stored, "
               f"{result['duplicates']} already stored, {result['rejected']} rejected "
               f"(collection {result['collection']})")
    lines = [summary]
    if result["added_by_node"]:
        lines.append(f"  the node added {result['added_by_node']} OASIS TLP 2.0 objects the input refers to"
                     " (marking definitions and their extension)")
    if result["normalised"]:
        lines.append(f"  {result['normalised']} TLP markings were rewritten to the OASIS TLP 2.0 ids")
    lines += [f"{file}:{f['line']}: {f['id'] or 'object'}: {f['message']}" for f in result["failures"]]
    return "\n".join(lines)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None, help="API root of the collection (default: search every root).")
@quiet_option
@json_option
@click.pass_context
def import_(ctx: click.Context, file: Path, collection: str, api_root: str | None, quiet: bool,
            as_json: bool) -> None:
    """Import STIX 2.1 from FILE (streamed; any size).

    FILE may be a STIX bundle, a TAXII envelope, a JSON list of objects, one STIX object or JSON
    lines. Each rejected object is reported with its line and the command exits 1; the valid ones
    are stored.
    """
    result = _import_file(node_of(ctx), file, collection, api_root, progress_wanted(as_json, quiet))
    emit(as_json, result, _import_text(file, result))
    if result["rejected"]:
        ctx.exit(1)


@click.command()
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None, help="API root of the collection (default: search every root).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the bundle to this file (all or nothing) instead of standard output.")
@quiet_option
@click.option("--json", "as_json", is_flag=True,
              help="With -o: print what was written as one JSON object (errors too).")
@click.pass_context
def export(ctx: click.Context, collection: str, api_root: str | None, output: Path | None, quiet: bool,
           as_json: bool) -> None:
    """Export every version of every object in a collection as a STIX bundle."""
    if as_json and output is None:
        raise CliError("--json needs -o FILE: without it the bundle itself is written to standard output",
                       code="usage", exit_code=2)
    node = node_of(ctx)
    target = node.find_collection(collection, api_root)
    versions = node.store.collection_stats(target.pk)[0]
    written = 0
    count = 0
    with output_stream(output) as stream, Progress(
        f"export {target.alias or target.id}", total=versions or None, unit="objects",
        # Not while the bundle itself scrolls past on the same terminal.
        enabled=progress_wanted(as_json, quiet) and (output is not None or not sys.stdout.isatty()),
    ) as progress:
        head = b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":['
        stream.write(head)
        written += len(head)
        for body in node.export_objects(target):
            separator = b",\n" if count else b"\n"
            stream.write(separator)
            stream.write(body)
            written += len(separator) + len(body)
            count += 1
            progress.object_done()
        stream.write(b"\n]}\n")
        written += 4
    if output is not None:
        payload = {"collection": target.id, "objects": count, "bytes": written, "path": str(output)}
        text = f"Exported {count} objects ({written} bytes) from {target.id} to {output}"
        if as_json:
            emit(True, payload, text)
        elif not quiet:
            click.echo(text, err=True)


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
