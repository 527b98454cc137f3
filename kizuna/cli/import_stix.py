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
from kizuna.stix.bundle_stream import BundleSyntaxError, check_bundle_syntax, iter_bundle_objects
from kizuna.stix.json_lines import FIRST_LINE_LIMIT, BadLine, json_lines_objects, looks_like_json_lines
from kizuna.store.base import Collection

ACCEPTED_INPUT = "a STIX bundle, a TAXII envelope, a JSON list of objects, one STIX object or JSON lines"


def import_stix21(node: Node, path: Path, target: Collection, show_progress: bool,
                  label: str | None = None) -> dict[str, Any]:
    """Stream a STIX 2.1 file into ``target``; failures are named by ``label`` (the path by default)."""
    name = label or str(path)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line
    bad_lines: list[dict[str, Any]] = []  # JSON lines that are not JSON: rejected by line, the rest read
    changed: list[BundleSyntaxError] = []  # the file turned malformed between the check and the import

    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(exc.strerror or str(exc), code="io", file=name) from None
    with raw:
        json_lines = looks_like_json_lines(raw.read(FIRST_LINE_LIMIT))
        raw.seek(0)
        if not json_lines:
            _check_whole_file(raw, path, name, show_progress)
        with Progress(f"import {path.name}", total=path.stat().st_size or None, unit="bytes",
                      enabled=show_progress) as progress:

            def objects() -> Iterator[Any]:
                if json_lines:  # each line stands alone: a bad one is named, and the lines after it are read
                    for item in json_lines_objects(tracked(raw, progress)):  # the bar counts lines as objects
                        if isinstance(item, BadLine):
                            bad_lines.append({"line": item.line, "id": None, "message": item.message})
                            continue
                        lines.append(item[0])
                        yield item[1]
                    return
                # The file was read whole without error just now; only a writer changing it since can stop this.
                try:
                    for line, obj in iter_bundle_objects(cast(BinaryIO, CountingReader(raw, progress)), name):
                        lines.append(line)
                        progress.object_done()
                        yield obj
                except BundleSyntaxError as exc:
                    changed.append(exc)

            set_aside_long_lived()
            report = node.import_objects(target, objects())
    failures = sorted([*bad_lines, *(
        {"line": lines[pos], "id": f["id"], "message": f["message"]}
        for pos, f in zip(report.failure_positions, report.failures, strict=True)
    )], key=lambda f: f["line"])
    stored = report.success_count - report.duplicate_count
    if changed:
        raise CliError(f"{changed[0].message} (the file changed while it was imported; {count(stored, 'object')} "
                       f"before this point {were(stored)} stored)", code="syntax", file=name, line=changed[0].line)
    if report.total == 0 and not bad_lines:
        raise CliError(f"no STIX objects to import; expected {ACCEPTED_INPUT}", code="empty", file=name)
    return {"collection": target.id, "total": report.total, "stored": stored,
            "duplicates": report.duplicate_count, "rejected": len(failures),
            "added_by_node": report.node_added, "normalised": report.normalisation_count,
            "failed": len(failures), "failures": failures, "unreadable_lines": len(bad_lines)}


def _check_whole_file(raw: BinaryIO, path: Path, name: str, show_progress: bool) -> None:
    """Read one bundle, envelope or list through to its end before anything of it is stored, and rewind it.

    A file is imported whole or not at all: a syntax error in its last bytes must not leave the batches
    before it committed.  Reading it twice keeps memory bounded by the largest object (one transaction for
    the whole file would instead hold the store's write lock, and grow its log, for as long as the import runs).
    """
    with Progress(f"check {path.name}", total=path.stat().st_size or None, unit="bytes",
                  enabled=show_progress) as progress:
        try:
            check_bundle_syntax(cast(BinaryIO, CountingReader(raw, progress)), name)
        except BundleSyntaxError as exc:
            raise CliError(f"{exc.message} (nothing of the file was stored)", code="syntax", file=exc.name,
                           line=exc.line) from None
    raw.seek(0)
