"""Streaming STIX 2.1 into a collection: the path of ``kizuna import`` for STIX 2.1 files, any size."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from kizuna.cli.common import CliError, count, were
from kizuna.cli.progress import CountingReader, Progress, tracked
from kizuna.core.bulk_import import set_aside_long_lived
from kizuna.core.node import Node
from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects
from kizuna.stix.json_lines import FIRST_LINE_LIMIT, BadLine, json_lines_objects, looks_like_json_lines
from kizuna.store.base import Collection

ACCEPTED_INPUT = "a STIX bundle, a TAXII envelope, a JSON list of objects, one STIX object or JSON lines"


def import_stix21(node: Node, path: Path, target: Collection, show_progress: bool,
                  label: str | None = None) -> dict[str, Any]:
    """Stream a STIX 2.1 file into ``target``; failures are named by ``label`` (the path by default)."""
    name = label or str(path)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line
    broken: list[BundleSyntaxError] = []
    bad_lines: list[dict[str, Any]] = []  # JSON lines that are not JSON: rejected by line, the rest read

    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(exc.strerror or str(exc), code="io", file=name) from None
    with raw, Progress(f"import {path.name}", total=path.stat().st_size or None, unit="bytes",
                       enabled=show_progress) as progress:

        json_lines = looks_like_json_lines(raw.read(FIRST_LINE_LIMIT))
        raw.seek(0)

        def objects() -> Iterator[Any]:
            if json_lines:  # each line stands alone: a bad one is named, and the lines after it are read
                for item in json_lines_objects(tracked(raw, progress)):  # the bar counts lines as objects
                    if isinstance(item, BadLine):
                        bad_lines.append({"line": item.line, "id": None, "message": item.message})
                        continue
                    lines.append(item[0])
                    yield item[1]
                return
            stream = cast(BinaryIO, CountingReader(raw, progress))
            # In one bundle a syntax error ends the input here; what came before it is still stored (and counted).
            try:
                for line, obj in iter_bundle_objects(stream, name):
                    lines.append(line)
                    progress.object_done()
                    yield obj
            except BundleSyntaxError as exc:
                broken.append(exc)

        set_aside_long_lived()
        report = node.import_objects(target, objects())
    failures = sorted([*bad_lines, *(
        {"line": lines[pos], "id": f["id"], "message": f["message"]}
        for pos, f in zip(report.failure_positions, report.failures, strict=True)
    )], key=lambda f: f["line"])
    stored = report.success_count - report.duplicate_count
    if broken:
        error = broken[0]
        duplicates, rejected = report.duplicate_count, len(failures)
        before = (f"{count(stored, 'object')} before this point {were(stored)} stored, {duplicates} {were(duplicates)} "
                  f"already stored, {rejected} {were(rejected)} rejected") if report.total \
            else "no objects before this point"
        raise CliError(f"{error.message} ({before})", code="syntax", file=error.name, line=error.line)
    if report.total == 0 and not bad_lines:
        raise CliError(f"no STIX objects to import; expected {ACCEPTED_INPUT}", code="empty", file=name)
    return {"collection": target.id, "total": report.total, "stored": stored,
            "duplicates": report.duplicate_count, "rejected": len(failures),
            "added_by_node": report.node_added, "normalised": report.normalisation_count,
            "failed": len(failures), "failures": failures, "unreadable_lines": len(bad_lines)}
