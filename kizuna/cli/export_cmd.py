"""``kizuna export``: a collection as STIX, MISP, a MISP feed, CSV, a blocklist, RPZ, Zeek Intel or Suricata.

Every export is somebody's view: the node administrator's by default, or with ``--as-org`` /
``--as-token-id`` exactly what that partner would receive over TAXII, because the objects come
from `Node.export_objects` with that principal — the one visibility check. STIX carries every
version; the other formats take the newest version of each object. Files are written whole or not
at all (temporary name, then rename).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import click
import orjson
from click.core import ParameterSource

from kizuna.cli.common import (
    CliError,
    dash_is_stdout,
    emit,
    node_of,
    output_stream,
    quiet_option,
    refuse_json_without_a_file,
    stdout_chosen,
    tlp_level,
    token_id_type,
)
from kizuna.cli.progress import Progress, progress_wanted
from kizuna.core import browse
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal, whose_view
from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.blocklists import BLOCKLIST_KINDS
from kizuna.formats.feed_build import DEFAULT_RPZ_ORIGIN, feed_input, feed_lines
from kizuna.formats.feeds import FeedOptions
from kizuna.formats.misp_feed import ViewMismatch, export_misp_feed, kept_events
from kizuna.policy.tlp import TlpLevel
from kizuna.store.base import Collection

EXPORT_FORMATS: Final = ("stix", "misp", "misp-feed", "csv", "txt", "rpz", "zeek", "suricata")


class _Export:
    """What one export reads: the node, the collection and whose eyes it is read with."""

    def __init__(self, node: Node, target: Collection, principal: Principal, show_progress: bool) -> None:
        self.node, self.target, self.principal = node, target, principal
        self.show_progress = show_progress
        self.count = 0

    def bodies(self, progress: Progress, *, latest_only: bool) -> Iterator[bytes]:
        for body in self.node.export_objects(self.target, self.principal, latest_only=latest_only):
            self.count += 1
            progress.object_done()
            yield body

    def feed_items(self, progress: Progress, fmt: str, ceiling: TlpLevel | None) -> Iterator[bytes | str]:
        """What the feed writer of ``fmt`` reads (`feed_input`: blocklists and RPZ read indicators only)."""
        for item in feed_input(self.node, fmt, self.target, self.principal, ceiling):
            self.count += 1
            progress.object_done()
            yield item

    def progress(self, enabled: bool = True) -> Progress:
        total = self.node.store.collection_stats(self.target.pk)[0]
        return Progress(f"export {self.target.alias or self.target.id}", total=total or None, unit="objects",
                        enabled=self.show_progress and enabled)


def _stix(run: _Export, stream: IO[bytes], to_terminal: bool) -> int:
    written = 0
    with run.progress(enabled=not to_terminal) as progress:  # not while the bundle scrolls past
        head = b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":['
        stream.write(head)
        written += len(head)
        for number, body in enumerate(run.bodies(progress, latest_only=False)):
            separator = b",\n" if number else b"\n"
            stream.write(separator)
            stream.write(body)
            written += len(separator) + len(body)
        stream.write(b"\n]}\n")
    return written + 4


def _org_of(node: Node) -> dict[str, str] | None:
    identity = node.identity()
    if not identity.get("id"):
        return None
    return {"name": str(identity.get("name", "")), "uuid": str(identity["id"]).split("--", 1)[1]}


def _misp_objects(run: _Export) -> list[dict[str, Any]]:
    from kizuna.formats.misp_out import SUPPORTING_TYPES  # imported by the caller already (misp-stix is slow)

    with run.progress() as progress:
        objects = [orjson.loads(body) for body in run.bodies(progress, latest_only=True)]
    if all(obj.get("type") in SUPPORTING_TYPES for obj in objects):  # alone, an event of no attribute
        ceiling = run.principal.tlp_ceiling
        below = f" at or below TLP:{ceiling.token.upper()}" if ceiling is not None else ""
        raise CliError(f"nothing to export: the collection holds nothing this principal may see{below}",
                       code="empty")
    return objects


_LIST_FORMATS: Final = ("csv", "txt", "rpz", "zeek", "suricata")
#: Options that shape one kind of output, by parameter: their name and the formats they apply to.
_ONLY_FOR: Final = {
    "kind": ("--type", ("txt",)), "rpz_origin": ("--rpz-origin", ("rpz",)), "info": ("--info", ("misp", "misp-feed")),
    "min_confidence": ("--min-confidence", _LIST_FORMATS),
    "include_warninglisted": ("--include-warninglisted", _LIST_FORMATS),
    "replace": ("--replace", ("misp-feed",)),
}


@click.command()
@click.option("--collection", "-c", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None, help="API root of the collection (default: search every root).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="stix", show_default=True,
              help="stix: a bundle of every version; misp: one MISP event; misp-feed: a MISP feed directory; "
                   "csv, txt (a blocklist), rpz, zeek, suricata: feeds of the indicators' IOCs.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, callback=dash_is_stdout,
              help="Write to this file (all or nothing) instead of standard output (-: standard output); "
              "misp-feed: a directory.")
@click.option("--as-org", default=None, metavar="NAME",
              help="Export what this organisation would receive over TAXII (its markings and agreements).")
@click.option("--as-token-id", default=None, metavar="ID", type=token_id_type,
              help="Export what this token would receive over TAXII (see `kizuna tokens list`).")
@click.option("--tlp-max", "--tlp-ceiling", "tlp_max", type=tlp_level, default=None,
              help="Leave out what is marked above this TLP level (--tlp-ceiling, as for feeds create); stix, "
                   "misp, misp-feed: objects above it are left out and parts above it (granular markings) "
                   "removed, as the node's visibility check does for a partner.")
@click.option("--min-confidence", type=click.IntRange(0, 100), default=None,
              help="Feeds: leave out indicators below this confidence (or without one).")
@click.option("--type", "kind", type=click.Choice(sorted(BLOCKLIST_KINDS)), default="ip", show_default=True,
              help="txt: which IOCs the blocklist holds.")
@click.option("--include-warninglisted", is_flag=True,
              help="Feeds: include indicators flagged as on a MISP warninglist (left out by default).")
@click.option("--rpz-origin", default=DEFAULT_RPZ_ORIGIN, show_default=True, metavar="ZONE",
              help="rpz: the zone's origin, as your resolver's response-policy statement names it.")
@click.option("--info", default=None, metavar="TITLE",
              help="misp: the event's title (default: the name of the STIX report it is made of, else "
                   "'Kizuna export'); misp-feed: the title of the event of what no report holds.")
@click.option("--replace", is_flag=True,
              help="misp-feed: write into a directory that holds a feed exported for another view (organisation, "
                   "token, --tlp-max), replacing it whole.")
@quiet_option
@click.option("--json", "as_json", is_flag=True,
              help="With -o: print what was written as one JSON object (errors too).")
@click.pass_context
def export(ctx: click.Context, collection: str, api_root: str | None, fmt: str, output: Path | None,
           as_org: str | None, as_token_id: str | None, tlp_max: str | None, min_confidence: int | None,
           kind: str, include_warninglisted: bool, rpz_origin: str, info: str | None, replace: bool, quiet: bool,
           as_json: bool) -> None:
    """Export a collection, as the node administrator or as a partner would receive it."""
    refuse_json_without_a_file(ctx, output, as_json, "the export itself")
    if info is not None and not info.strip():  # a MISP event must have a title
        raise CliError("--info is empty: give the event a title, or leave the option out", code="usage",
                       exit_code=2)
    if fmt == "misp-feed" and output is None:
        if stdout_chosen(ctx):
            raise CliError("--format misp-feed cannot be written to standard output (-o -): give -o DIRECTORY",
                           code="usage", exit_code=2)
        raise CliError("--format misp-feed needs -o DIRECTORY", code="usage", exit_code=2)
    for param, (option, formats) in _ONLY_FOR.items():  # an option the format ignores is a mistake worth telling
        if fmt not in formats and ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE:
            raise CliError(f"{option} applies to {', '.join(formats)} exports only, not {fmt}", code="usage",
                           exit_code=2)
    node = node_of(ctx)
    if as_org is None and as_token_id is None:
        principal, target = NODE_ADMIN, node.find_collection(collection, api_root)
    else:
        acting = browse.acting_as(node, as_token_id, as_org)
        principal, target = acting.principal, browse.find_collection(node, acting, collection, api_root)
    if tlp_max is not None and fmt not in _LIST_FORMATS:
        # Every export reads through the visibility check with the ceiling on top of the principal's own rules;
        # the feeds' reader adds it itself (feed_input), as the feed endpoints' does.
        principal = dataclasses.replace(principal, tlp_ceiling=TlpLevel.from_token(tlp_max))
    run = _Export(node, target, principal, progress_wanted(as_json, quiet))
    report = ConversionReport(fmt)
    written = 0
    try:
        if fmt == "misp-feed":
            assert output is not None
            if output.exists() and not output.is_dir():
                raise CliError("is a file; misp-feed writes a directory", code="io", file=str(output))
            if not output.parent.is_dir():
                raise CliError(f"directory {output.parent} does not exist", code="io", file=str(output))
            view, part = _feed_view(principal, target)
            try:
                kept_events(output, view, part, replace)  # before anything is read: a refusal reads nothing
            except ViewMismatch as exc:
                raise CliError(exc.message, code="exists") from None
            # misp-stix takes seconds to import
            from kizuna.formats.misp_out import DEFAULT_INFO, write_misp_events

            org = _org_of(node)
            events = write_misp_events(_misp_objects(run), report, org=org, info=info or DEFAULT_INFO)
            written = len(export_misp_feed(events, output, org=org, view=view, collection=part, replace=replace))
        else:
            with output_stream(output) as stream:
                if fmt == "stix":
                    written = _stix(run, stream, output is None and sys.stdout.isatty())
                elif fmt == "misp":
                    from kizuna.formats.misp_out import write_misp_event

                    event = write_misp_event(_misp_objects(run), report, info=info, org=_org_of(node))
                    data = orjson.dumps(event, option=orjson.OPT_INDENT_2) + b"\n"
                    stream.write(data)
                    written = len(data)
                else:
                    options = FeedOptions(tlp_ceiling=TlpLevel.from_token(tlp_max) if tlp_max else None,
                                          min_confidence=min_confidence, include_flagged=include_warninglisted)
                    with run.progress(enabled=output is not None) as progress:
                        items = run.feed_items(progress, fmt, options.tlp_ceiling)
                        for piece in feed_lines(fmt, items, options, report,
                                                kind, rpz_origin):
                            data = piece.encode("utf-8")
                            stream.write(data)
                            written += len(data)
    except FormatError as exc:
        raise CliError(exc.message, code="format", file=exc.where) from None
    _summarise(fmt, run, report, output, written, as_json=as_json, quiet=quiet)


def _feed_view(principal: Principal, target: Collection) -> tuple[str, str]:
    """Digests of who a MISP feed export is for (whose view, under which ceiling) and of its collection: what
    the feed directory records (formats/misp_feed.py, `VIEW`), naming neither."""
    ceiling = principal.tlp_ceiling.token if principal.tlp_ceiling is not None else None
    view = hashlib.sha256(orjson.dumps([whose_view(principal), ceiling])).hexdigest()
    return view, hashlib.sha256(target.id.encode()).hexdigest()[:32]


def _summarise(fmt: str, run: _Export, report: ConversionReport, output: Path | None, written: int, *,
               as_json: bool, quiet: bool) -> None:
    summary = report.summary()
    unit = "events" if fmt == "misp-feed" else "bytes"
    payload = {"collection": run.target.id, "format": fmt, "objects": run.count, unit: written,
               "path": None if output is None else str(output), "losses": summary["losses"],
               "warnings": summary["warnings"]}
    text = f"Exported {run.count} objects ({written} {unit}) from {run.target.alias or run.target.title} as {fmt}" + (
        f" to {output}" if output is not None else "")
    if report.losses:
        text += f"\n  {len(report.losses)} objects or values could not be expressed in {fmt} (--json lists them)"
    text += "".join(f"\n  {w}" for w in report.warnings[:20])
    if as_json:
        emit(True, payload, text)
    elif not quiet and (output is not None or fmt != "stix"):
        click.echo(text, err=True)
