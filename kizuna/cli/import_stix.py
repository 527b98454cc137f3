"""Streaming STIX 2.1 into a collection: the path of ``kizuna import`` for STIX 2.1 files, any size."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from kizuna.cli.common import CliError
from kizuna.cli.progress import CountingReader, Progress
from kizuna.core.node import Node
from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects
from kizuna.store.base import Collection

ACCEPTED_INPUT = "a STIX bundle, a TAXII envelope, a JSON list of objects, one STIX object or JSON lines"


def import_stix21(node: Node, path: Path, target: Collection, show_progress: bool,
                  label: str | None = None) -> dict[str, Any]:
    """Stream a STIX 2.1 file into ``target``; failures are named by ``label`` (the path by default)."""
    name = label or str(path)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line
    broken: list[BundleSyntaxError] = []

    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(exc.strerror or str(exc), code="io", file=name) from None
    with raw, Progress(f"import {path.name}", total=path.stat().st_size or None, unit="bytes",
                       enabled=show_progress) as progress:

        def objects() -> Iterator[Any]:
            # A syntax error ends the input here; what came before it is still stored (and counted).
            try:
                stream = cast(BinaryIO, CountingReader(raw, progress))
                for line, obj in iter_bundle_objects(stream, name):
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
        raise CliError(f"no STIX objects to import; expected {ACCEPTED_INPUT}", code="empty", file=name)
    return {"collection": target.id, "total": report.total, "stored": stored,
            "duplicates": report.duplicate_count, "rejected": len(failures),
            "added_by_node": report.node_added, "normalised": report.normalisation_count,
            "failed": len(failures), "failures": failures}
