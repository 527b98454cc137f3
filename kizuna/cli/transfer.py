"""``kizuna import`` and ``kizuna export``: STIX in and out of a collection, streamed."""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kizuna.cli.common import emit, json_option, node_of
from kizuna.core.node import Node


def _import_file(node: Node, path: Path, collection_ref: str, api_root: str | None) -> dict[str, Any]:
    from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

    target = node.find_collection(collection_ref, api_root)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line

    def objects(stream: Any) -> Iterator[Any]:
        for line, obj in iter_bundle_objects(stream, str(path)):
            lines.append(line)
            yield obj

    try:
        with path.open("rb") as stream:
            report = node.import_objects(target, objects(stream))
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror or exc}") from None
    except BundleSyntaxError as exc:
        raise click.ClickException(f"{exc} (objects before this point were imported)") from None
    failures = [
        {"line": lines[pos], "id": f["id"], "message": f["message"]}
        for pos, f in zip(report.failure_positions, report.failures, strict=True)
    ]
    return {"collection": target.id, "total": report.total, "stored": report.success_count,
            "failed": len(failures), "failures": failures}


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None)
@json_option
@click.pass_context
def import_(ctx: click.Context, file: Path, collection: str, api_root: str | None, as_json: bool) -> None:
    """Import a STIX 2.1 bundle file (streamed; any size)."""
    result = _import_file(node_of(ctx), file, collection, api_root)
    text = [f"{file}: {result['stored']} of {result['total']} objects stored in {result['collection']}"]
    text += [f"{file}:{f['line']}: {f['id'] or 'object'}: {f['message']}" for f in result["failures"]]
    emit(as_json, result, "\n".join(text))
    if result["failed"]:
        ctx.exit(1)


@click.command()
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the bundle here instead of standard output.")
@click.pass_context
def export(ctx: click.Context, collection: str, api_root: str | None, output: Path | None) -> None:
    """Export every version of every object in a collection as a STIX bundle."""
    node = node_of(ctx)
    target = node.find_collection(collection, api_root)
    stream = output.open("wb") if output else sys.stdout.buffer
    try:
        stream.write(b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":[')
        for index, body in enumerate(node.export_objects(target)):
            stream.write(b",\n" if index else b"\n")
            stream.write(body)
        stream.write(b"\n]}\n")
    finally:
        if output:
            stream.close()
        else:
            stream.flush()


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
