"""``kizuna import``: STIX 2.1, STIX 2.0, STIX 1.x, MISP events and IOC lists into a collection.

The source is a file, a directory (each file on its own: a bad one is reported, the others are
imported) or an http(s) URL. The format of each input is sniffed (`kizuna.formats.detect_format`)
unless ``--format`` forces it. STIX 2.1 streams into ingest; every other format is converted whole
before anything is stored, so a malformed file stores nothing. What did not survive (per MISP
attribute, per CSV line, the elevator's warnings, objects ingest refused) is printed and kept as an
``import-report`` audit record.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Final

import click
import orjson

from kizuna.cli.common import (
    CliError,
    FiniteFloat,
    Moment,
    check_output_path,
    count,
    emit,
    file_and_line,
    json_option,
    node_of,
    output_stream,
    quiet_option,
    tlp_level,
    were,
)
from kizuna.cli.fetch_source import fetch_url, is_url
from kizuna.cli.import_stix import import_stix21
from kizuna.cli.progress import Progress, progress_wanted
from kizuna.core.bulk_import import set_aside_long_lived
from kizuna.core.forked import usable_cores
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.formats.base import FormatError
from kizuna.formats.convert_ahead import Job, Outcome, convert_file, converted_in_order, workers_for
from kizuna.formats.detect_format import HEAD_BYTES, IMPORT_FORMATS, STIX, Converted, IocOptions, detect_format
from kizuna.formats.warninglists import DEFAULT_LISTS, WarninglistError, Warninglists, load_warninglists
from kizuna.store.base import Collection

AUDIT_KIND: Final = "import-report"
#: Entries per list kept in the audit record (the --report file and --json always hold all of them).
AUDIT_LIMIT: Final = 10_000
#: Detail lines printed under the summary; the rest are in --json, --report and the audit record.
SHOWN: Final = 20
_SKIPPED_IN_DIRECTORIES: Final = {"manifest.json", "hashes.csv"}  # a MISP feed's index files, not events
#: A directory's documentation (its README, licence, notes): prose, whose hosts and hashes an IOC-list reader
#: would otherwise take for indicators. Named on the command line, such a file is imported as asked.
_DOCUMENTATION: Final = re.compile(r"(?i)(readme|licen[cs]e|copying|notice|changelog|authors)([.-].*)?|.*\.(md|rst)")


_Source = dict[str, Any]  # one source's part of the report (imported or failed)


class _Import:
    """One run: the options, the collection, the warninglists (loaded once, on first need)."""

    def __init__(self, node: Node, target: Collection, fmt: str, ioc: IocOptions, lists: tuple[str, ...] | None,
                 show_progress: bool, workers: int) -> None:
        self.node, self.target, self.fmt, self.ioc = node, target, fmt, ioc
        self.workers = workers  # processes converting and preparing ahead of the one storing (1: none)
        self.lists = lists
        self.show_progress = show_progress
        self._warninglists: Warninglists | None = None

    def warninglists(self) -> Warninglists | None:
        if self.lists is None:
            return None
        if self._warninglists is None:
            try:
                self._warninglists = load_warninglists(self.lists)
            except WarninglistError as exc:
                raise CliError(str(exc), code="usage", exit_code=2) from None
        return self._warninglists

    def job(self, path: Path, label: str) -> Job:
        """The file and its format (given, or told from its first bytes); CliError when it cannot be read or told."""
        try:
            with path.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError as exc:
            raise CliError(exc.strerror or str(exc), code="io", file=label) from None
        return Job(path, label, self.fmt if self.fmt != "auto" else _detect(head, label))

    def one(self, job: Job, outcome: Outcome | None = None, workers: int = 0) -> dict[str, Any]:
        """Import one file, converted here unless ``outcome`` brings its conversion (``workers``: processes
        forked to convert the events of a MISP document); CliError when it is malformed (then nothing of it is
        stored)."""
        if job.fmt == STIX:
            result = import_stix21(self.node, job.path, self.target, self.show_progress, job.label)
            return {"source": job.label, "format": job.fmt, **result, "flagged": 0, "flagged_values": [], "losses": [],
                    "rejected_input": [], "warnings": []}
        if outcome is None:
            outcome = convert_file(job, self.ioc, self.warninglists(), workers)
        try:
            converted = outcome.result()
        except OSError as exc:
            raise CliError(str(exc), code="io", file=job.label) from None
        except FormatError as exc:
            raise _format_failure(exc, job.label) from None
        return self._store(converted, job.label)

    def _store(self, converted: Converted, label: str) -> dict[str, Any]:
        objects = converted.report.objects
        with Progress(f"import {Path(label).name}", total=len(objects) or None, unit="objects",
                      enabled=self.show_progress) as progress:
            def counted() -> Any:
                for obj in objects:
                    progress.object_done()
                    yield obj

            set_aside_long_lived()  # the converted objects and the warninglists, out of the collector's walks
            report = self.node.import_objects(self.target, counted(), ahead=objects, workers=self.workers)
        failures = [{"id": f["id"], "message": f["message"]} for f in report.failures]
        summary = converted.report.summary()
        return {"source": label, "format": converted.format, "collection": self.target.id,
                "total": report.total, "stored": report.success_count - report.duplicate_count,
                "duplicates": report.duplicate_count, "rejected": len(failures), "failed": len(failures),
                "added_by_node": report.node_added, "normalised": report.normalisation_count,
                "flagged": converted.flagged, "flagged_values": converted.flagged_values, "failures": failures,
                "losses": summary["losses"],
                "rejected_input": summary["rejected"], "warnings": summary["warnings"]}

    def directory(self, files: list[Path]) -> tuple[list[_Source], list[_Source], int]:
        """Import each file of a directory, converted ahead by worker processes where that pays; the
        sources imported, those not (one bad file is reported, the others are imported), and how many
        processes converted files ahead."""
        sources: list[_Source] = []
        failed: list[_Source] = []
        planned: list[Job | CliError] = []
        for file in files:
            try:
                planned.append(self.job(file, str(file)))
            except CliError as exc:
                planned.append(exc)
        jobs = [job for job in planned if isinstance(job, Job)]
        helpers = workers_for(jobs, self.workers)
        # loaded before the workers fork, which inherit them; not at all for a directory of STIX 2.1 only
        lists = self.warninglists() if any(job.fmt != STIX for job in jobs) else None
        outcomes = converted_in_order(jobs, self.ioc, lists, helpers)
        try:
            for file, job in zip(files, planned, strict=True):
                try:
                    if isinstance(job, CliError):
                        raise job
                    read = self.one(job, next(outcomes))
                except CliError as exc:
                    where = f"{exc.file}:{exc.line}" if exc.file and exc.line else exc.file or str(file)
                    failed.append({"source": str(file), "error": exc.message, "where": where})
                    continue
                if read["total"] == 0 and not read["rejected_input"] and not read["failures"]:
                    # an empty file (or one of blank lines): as on its own, nothing usable, not a success
                    failed.append({"source": str(file), "error": "nothing to import: the file holds no objects "
                                   "or values", "where": str(file)})
                    continue
                sources.append(read)
        finally:
            outcomes.close()  # the workers end with the import, whatever ends it
        return sources, failed, helpers


def _detect(head: bytes, label: str) -> str:
    try:
        return detect_format(head, label)
    except FormatError as exc:
        raise _format_failure(exc, label) from None


def _format_failure(exc: FormatError, label: str) -> CliError:
    """A FormatError's ``where`` (``FILE:LINE``, or a file and uuid) as the CLI's file and line."""
    where = exc.where or label
    file, line = file_and_line(where)
    if line is not None:
        return CliError(exc.message, code="format", file=file, line=line)
    if where.startswith(label) and where != label:  # "FILE (uuid)": the uuid belongs to the message
        return CliError(f"{exc.message} {where[len(label):].strip()}", code="format", file=label)
    return CliError(exc.message if where == label else f"{exc.message} ({where})", code="format", file=label)


def _files_of(directory: Path) -> tuple[list[Path], list[str], list[str]]:
    """The files of a directory to import, the documentation files left out, and its subdirectories (not read:
    a directory is one level, so a feed's archive folder beside it is not imported by surprise)."""
    entries = [p for p in sorted(directory.iterdir()) if not p.name.startswith(".")]
    files = [p for p in entries if p.is_file() and p.name not in _SKIPPED_IN_DIRECTORIES]
    return ([p for p in files if not _DOCUMENTATION.fullmatch(p.name)],
            [str(p) for p in files if _DOCUMENTATION.fullmatch(p.name)],
            [str(p) for p in entries if p.is_dir()])


def _failure_lines(source: dict[str, Any]) -> list[str]:
    label = source["source"]
    return [f"{label}:{f['line']}: {f['id'] + ': ' if f['id'] else ''}{f['message']}" if "line" in f
            else f"{label}: {f['id'] or 'object'}: {f['message']}" for f in source["failures"]]


def _details(source: dict[str, Any]) -> list[str]:
    """What did not survive the conversion of one source (rejected records, losses), what was flagged, warnings."""
    lines = [f"  {r['where']}: rejected: {r['reason']}" for r in source["rejected_input"]]
    lines += [f"  {loss['ref']}: {loss['field']} lost: {loss['reason']}" for loss in source["losses"]]
    lines += [f"  {f['ref']}: flagged by warninglists ({', '.join(f['lists'])}): {f['value']}"
              for f in source["flagged_values"]]
    lines += [f"  {source['source']}: {w}" for w in source["warnings"]]
    return lines


def _text(result: dict[str, Any], name: str) -> str:
    """The summary for a person; ``name``: the collection's alias or title (the JSON keeps its id)."""
    out: list[str] = []
    details: list[str] = []
    for s in result["sources"]:
        unreadable = s.get("unreadable_lines", 0)  # rejected too, but no object was read from them
        line = (f"{s['source']}: {count(s['total'], 'object')} read: {s['stored']} stored, {s['duplicates']} "
                f"already stored, {s['rejected'] - unreadable} rejected"
                + (f", and {count(unreadable, 'line')} not JSON" if unreadable else "") + f" (collection {name})")
        if s["format"] != STIX:
            line += (f"; converted from {s['format']}: {count(len(s['rejected_input']), 'input record')} rejected, "
                     f"{count(len(s['losses']), 'loss', 'losses')}, {s['flagged']} flagged by warninglists")
        out.append(line)
        if s["added_by_node"]:
            out.append(f"  the node added {count(s['added_by_node'], 'OASIS TLP 2.0 object')} the input refers to"
                       " (marking definitions and their extension)")
        if s["normalised"]:
            out.append(f"  {count(s['normalised'], 'TLP marking')} {were(s['normalised'])} rewritten to the "
                       "OASIS TLP 2.0 ids")
        out += _failure_lines(s)  # refused objects are listed in full, as the STIX import always did
        details += _details(s)
    for bad in result["failed_sources"]:
        out.append(f"{bad['where']}: not imported: {bad['error']}")
    out += [f"{path}: skipped: documentation, not data (name the file itself to import it)"
            for path in result["skipped"]]
    out += [f"{path}: skipped: a directory (directories are read one level deep; name it to import it)"
            for path in result["skipped_directories"]]
    out += details[:SHOWN]
    if len(details) > SHOWN:
        out.append(f"  … and {len(details) - SHOWN} more (all of them: --json, --report FILE, or record "
                   f"{result['audit_seq']} of `kizuna audit export --kind {AUDIT_KIND}`)")
    return "\n".join(out)


def _audit_body(result: dict[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in result.items() if key not in ("sources", "audit_seq", "failures")}
    body["sources"] = []
    for source in result["sources"]:
        kept = dict(source)
        for key in ("failures", "losses", "rejected_input", "flagged_values", "warnings"):
            if len(source[key]) > AUDIT_LIMIT:
                kept[key] = source[key][:AUDIT_LIMIT]
                kept[f"{key}_not_kept"] = len(source[key]) - AUDIT_LIMIT
        body["sources"].append(kept)
    return body


@click.command("import")
@click.argument("source")
@click.option("--collection", "-c", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None, help="API root of the collection (default: search every root).")
@click.option("--format", "fmt", type=click.Choice(["auto", *IMPORT_FORMATS]), default="auto", show_default=True,
              help="The input's format; auto decides from its first bytes (and extension) for each file.")
@click.option("--tlp", type=tlp_level, default=None,
              help="IOC lists: mark every indicator with this TLP 2.0 level.")
@click.option("--label", "labels", multiple=True, help="IOC lists: a label for every indicator (repeatable).")
@click.option("--confidence", type=click.IntRange(0, 100), default=None,
              help="IOC lists: the confidence (0-100) of every indicator.")
@click.option("--valid-until", type=Moment(), default=None, metavar="TIME",
              help="IOC lists: every indicator expires at this date or time (ISO 8601, UTC if no offset).")
@click.option("--producer", default=None, metavar="ORG",
              help="IOC lists: the organisation (name or identity id, see `kizuna orgs list`) that made the list, "
                   "as every indicator's created_by_ref, so that agreements' --producers and the rule against "
                   "pushing another producer's TLP:AMBER+STRICT/RED on to partners apply to it. Default: none, "
                   "as for the node's own objects.")
@click.option("--warninglist", "warninglists", multiple=True, metavar="NAME",
              help="Flag values on this MISP warninglist (repeatable; default: Kizuna's selection, "
                   "see docs/formats.md).")
@click.option("--no-warninglists", is_flag=True, help="Flag nothing: apply no warninglist.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=256 * 1024 * 1024, show_default=True,
              help="URL sources: refuse a download larger than this.")
@click.option("--timeout", type=FiniteFloat(min=0.1), default=30.0, show_default=True,
              help="URL sources: seconds to wait for the server.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes converting a directory's MISP, STIX 1.x and STIX 2.0 files ahead of the one "
                   "storing them, or the events of one MISP file, and preparing a large converted file's objects "
                   "(default: one per CPU core; 1: all in this process).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the whole report (every loss and rejected line) to this JSON file.")
@quiet_option
@json_option
@click.pass_context
def import_(ctx: click.Context, source: str, collection: str, api_root: str | None, fmt: str, tlp: str | None,
            labels: tuple[str, ...], confidence: int | None, valid_until: str | None, producer: str | None,
            warninglists: tuple[str, ...],
            no_warninglists: bool, max_bytes: int, timeout: float, workers: int | None, report_file: Path | None,
            quiet: bool,
            as_json: bool) -> None:
    """Import SOURCE (a file, a directory or an http(s) URL) into a collection.

    Formats: STIX 2.1 (streamed; any size), STIX 2.0 (upgraded), STIX 1.x XML (stix2-elevator),
    MISP event JSON (misp-stix) and CSV or text IOC lists. Each file's format is detected unless
    --format is given. A malformed file imports nothing and the command exits 1 with one line
    naming the file and line; refused lines and lost fields are reported, the rest imported.
    """
    if not source.strip():
        raise CliError("SOURCE is empty: give a file, a directory or an http(s) URL", code="usage", exit_code=2)
    if warninglists and no_warninglists:
        raise CliError("give --warninglist or --no-warninglists, not both", code="usage", exit_code=2)
    if any(not label.strip() for label in labels):  # stored as labels: [""], which no one can search for
        raise CliError("--label is empty: give a word such as phishing", code="usage", exit_code=2)
    if report_file is not None:
        check_output_path(report_file)
    node = node_of(ctx)
    target = node.find_collection(collection, api_root)
    lists: tuple[str, ...] | None = None if no_warninglists else tuple(warninglists) or DEFAULT_LISTS
    made_by = None
    if producer is not None:
        found = node.store.get_organisation(producer)
        if found is None:
            raise CliError(f"--producer: no organisation {producer!r} (see `kizuna orgs list`)", code="usage",
                           exit_code=2)
        made_by = found.id
    run = _Import(node, target, fmt, IocOptions(tlp=tlp, labels=labels, confidence=confidence,
                                                valid_until=valid_until, created_by_ref=made_by), lists,
                  progress_wanted(as_json, quiet), usable_cores() if workers is None else workers)
    sources: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    skipped: list[str] = []
    subdirectories: list[str] = []
    helpers = 0
    with tempfile.TemporaryDirectory(prefix="kizuna-import-") as spool:
        if is_url(source):
            path = fetch_url(source, Path(spool), max_bytes=max_bytes, timeout=timeout)
            sources.append(run.one(run.job(path, source), workers=run.workers))
        elif Path(source).is_dir():
            files, skipped, subdirectories = _files_of(Path(source))
            if not files:
                raise CliError("the directory holds no files to import", code="empty", file=source)
            sources, failed, helpers = run.directory(files)
        else:
            if not Path(source).exists():
                raise CliError("no such file, directory or http(s) URL", code="io", file=source)
            sources.append(run.one(run.job(Path(source), source), workers=run.workers))
    result: dict[str, Any] = {
        "collection": target.id, "collection_name": target.alias or target.title,
        "sources": sources, "failed_sources": failed, "skipped": skipped,
        "skipped_directories": subdirectories, "conversion_workers": helpers,
        "stored": sum(s["stored"] for s in sources), "duplicates": sum(s["duplicates"] for s in sources),
        "rejected": sum(s["rejected"] for s in sources), "failed": sum(s["failed"] for s in sources),
        "total": sum(s["total"] for s in sources), "added_by_node": sum(s["added_by_node"] for s in sources),
        "normalised": sum(s["normalised"] for s in sources),
        "failures": [{**f, "source": s["source"]} for s in sources for f in s["failures"]],
    }
    result["audit_seq"] = node.audit.record(AUDIT_KIND, NODE_ADMIN.key, _audit_body(result)).seq
    if report_file is not None:
        with output_stream(report_file) as stream:
            stream.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    if result["stored"] + result["duplicates"] == 0 and not result["rejected"]:
        refused = [r for s in sources for r in s["rejected_input"]]
        if failed:
            why, where = f"; first failure: {failed[0]['error']}", failed[0]["where"]
        elif refused:
            why, where = f"; {len(refused)} rejected, the first: {refused[0]['reason']}", refused[0]["where"]
        else:
            why, where = "", source
        file, line = file_and_line(where)
        raise CliError(f"nothing usable was imported{why}", code="empty", file=file, line=line)
    emit(as_json, result, _text(result, target.alias or target.title))
    # Anything of the input left out fails the command, whatever refused it: a scheduled import's exit status
    # is what most operators see, and a line dropped with exit 0 would be dropped silently there.
    unreadable = sum(s.get("unreadable_lines", 0) for s in sources)
    refused_input = sum(len(s["rejected_input"]) for s in sources)
    if result["rejected"] or failed or refused_input:
        if not as_json:  # the report is above; the failure itself is one line, as for every command
            what = [f"{len(failed)} of {count(len(failed) + len(sources), 'file')} not imported"] if failed else []
            what += [f"{count(result['rejected'] - unreadable, 'object')} refused by ingest"] \
                if result["rejected"] > unreadable else []
            what += [f"{count(unreadable, 'line')} not JSON"] if unreadable else []
            what += [f"{count(refused_input, 'input record')} not converted"] if refused_input else []
            click.echo(f"kizuna import: {', '.join(what)} (listed above)", err=True)
        ctx.exit(1)
