"""``kizuna ops``: mass-event operations (a Rugby World Cup, an Olympic Games) as time-boxed workspaces.

Each command is a thin call into kizuna/ops; the runbook is docs/operations-runbook.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from kizuna.cli.common import (
    CliError,
    check_output_path,
    column_width,
    count,
    emit,
    json_option,
    node_of,
    output_stream,
    padded,
    tlp_level,
)
from kizuna.cli.ops_watch import operation_watch
from kizuna.cli.progress import Progress, progress_wanted, tracked
from kizuna.detect.bundle import LOCAL_IDENTITY_ID
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings
from kizuna.detect.run import NothingToMatch, require_log_lines
from kizuna.ops.arrivals import alerts_of
from kizuna.ops.assets import add_assets, list_assets
from kizuna.ops.declassify import declassify
from kizuna.ops.incidents import (
    DETERMINATIONS,
    STATUSES,
    add_incident,
    determination_of,
    link_incident,
    status_of,
    update_incident,
)
from kizuna.ops.reading import collector_paused, since_micros
from kizuna.ops.records import find, load_lookalikes
from kizuna.ops.report import default_since, shift_report
from kizuna.ops.sightings import promote
from kizuna.ops.workspace import (
    DEFAULT_GRACE_DAYS,
    close_operation,
    create_operation,
    describe,
    list_operations,
    review_list,
)
from kizuna.web.i18n import translations


def operation_command(group: click.Group, name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A subcommand of ``group`` that names an operation first and answers in JSON with --json."""
    def wrap(function: Callable[..., None]) -> click.Command:
        command: click.Command = group.command(name)(
            click.argument("operation")(json_option(click.pass_context(function))))
        return command
    return wrap


@click.group()
def ops() -> None:
    """Mass-event operations: partner set, protected assets, lookalike watch, incidents, reports."""


@ops.command("create")
@click.argument("name")
@click.option("--from", "start", required=True, metavar="DATE", help="First day of the operation (2027-09-20, UTC).")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day of the operation (inclusive, UTC).")
@click.option("--partner", "partners", multiple=True, required=True,
              help="Partner organisation (name or identity id); repeatable.")
@click.option("--tlp-default", type=tlp_level, default="amber", show_default=True,
              help="Marking of what the operation itself publishes, and the partners' agreement ceiling.")
@click.option("--grace-days", type=int, default=DEFAULT_GRACE_DAYS, show_default=True,
              help="Days after the last day that the partner tokens keep working.")
@json_option
@click.pass_context
def ops_create(ctx: click.Context, name: str, start: str, end: str, partners: tuple[str, ...], tlp_default: str,
               grace_days: int, as_json: bool) -> None:
    """Create an operation: three collections, an agreement and a token per partner (secrets shown once)."""
    node = node_of(ctx)
    operation, issued = create_operation(node, name, start, end, list(partners), tlp_default, grace_days)
    payload: dict[str, Any] = {"operation": describe(node, operation),
                               "tokens": [{"org": t.organisation, "token": t.secret} for t in issued]}
    lines = [f"Operation {operation.name!r} ({operation.slug}) created; collections "
             + ", ".join(f"{operation.slug}-{role}" for role in operation.collections)
             + f"; partner tokens valid until {operation.expires[:19]}Z.",
             "Store these secrets now; they are not shown again:"]
    lines += [f"  {t.organisation}: {t.secret}" for t in issued]
    emit(as_json, payload, "\n".join(lines))


@ops.command("list")
@json_option
@click.pass_context
def ops_list(ctx: click.Context, as_json: bool) -> None:
    """List operations: name, dates, state and partner count."""
    found = list_operations(node_of(ctx))
    rows = [{"name": o.name, "slug": o.slug, "start": o.start[:10], "last_day": o.last_day, "state": o.state,
             "partners": len(o.partners)} for o in found]
    width = column_width([str(r["slug"]) for r in rows])
    text = "\n".join(f"{padded(str(r['slug']), width)}  {r['start']} .. {r['last_day']}  {r['state']:<6}  "
                     f"{r['partners']} partners  {r['name']}"
                     for r in rows) or "No operations; create one with `kizuna ops create`."
    emit(as_json, {"operations": rows}, text)


@operation_command(ops, "show")
def ops_show(ctx: click.Context, operation: str, as_json: bool) -> None:
    """Show an operation: dates, collections, partners and the state of their tokens; once closed, what is
    still on its declassification review list."""
    node = node_of(ctx)
    found = find(node.store, operation)
    shown = describe(node, found)
    lines = [f"{shown['name']} ({shown['slug']}): {shown['state']}, {shown['start'][:10]} .. {shown['last_day']}, "
             f"default TLP:{shown['tlp_default'].upper()}, tokens until {shown['tokens_expire'][:19]}Z"]
    lines += [f"  collection {role}: {c['title']} ({c['alias']})" for role, c in shown["collections"].items()]
    lines += [f"  partner {p['organisation']}: agreement {p['agreement']}, token {p['token']} {p['token_state']}"
              for p in shown["partners"]]
    if found.state == "closed":
        shown["review"] = review_list(node, found)
        lines += _review_lines(shown["review"])
    emit(as_json, shown, "\n".join(lines))


@operation_command(ops, "close")
def ops_close(ctx: click.Context, operation: str, as_json: bool) -> None:
    """Close an operation: partner tokens stop now; prints the declassification review list (`ops show` prints
    what is left on it later)."""
    closed, review = close_operation(node_of(ctx), operation)
    lines = [f"Operation {closed.name!r} closed at {(closed.closed_at or '')[:19]}Z; "
             f"{len(closed.partners)} partner tokens ended.", *_review_lines(review)]
    emit(as_json, {"operation": closed.slug, "closed_at": closed.closed_at, "review": review}, "\n".join(lines))


def _review_lines(review: list[dict[str, Any]]) -> list[str]:
    return [f"Declassification review ({len(review)} AMBER objects; approve with `kizuna ops declassify`):"] + [
        f"  {r['id']}  {r['type']}  TLP:{r['tlp'].upper()}  {r['name'] or '-'}  by {r['producer'] or '-'}"
        for r in review]


@ops.group("assets")
def ops_assets() -> None:
    """Protected assets of an operation: domains, IP ranges, URLs, identities."""


@operation_command(ops_assets, "add")
@click.option("--domain", "domains", multiple=True, help="A protected domain (its lookalikes are watched too).")
@click.option("--cidr", "cidrs", multiple=True, help="A protected IP address or range (192.0.2.0/24).")
@click.option("--url", "urls", multiple=True, help="A protected URL (http or https).")
@click.option("--identity", "identities", multiple=True, help="A protected person or organisation, by name.")
def ops_assets_add(ctx: click.Context, operation: str, domains: tuple[str, ...], cidrs: tuple[str, ...],
                   urls: tuple[str, ...], identities: tuple[str, ...], as_json: bool) -> None:
    """Add protected assets (repeat any option); each is stored as STIX in the watchlist collection."""
    asked = [("domain", v) for v in domains] + [("cidr", v) for v in cidrs] + [("url", v) for v in urls] + \
        [("identity", v) for v in identities]
    if not asked:
        raise CliError("give at least one --domain, --cidr, --url or --identity", code="usage")
    node = node_of(ctx)
    found = find(node.store, operation)
    result = add_assets(node, found, asked, lambda new: _lookalike_progress(new, progress_wanted(as_json, False)))
    watch = len(load_lookalikes(node.store, found.slug))
    text = f"{len(result.added)} assets added to {found.slug}-watchlist"
    if result.already:
        text += (f" ({len(result.already)} already protected: "
                 f"{', '.join(str(row['value']) for row in result.already)})")
    emit(as_json, {"added": result.added, "already_protected": result.already, "lookalikes_watched": watch},
         f"{text}; {watch} lookalike domains watched.")


def _lookalike_progress(domains: list[str], enabled: bool) -> Iterator[str]:
    """The new domains, a bar on a terminal counting those whose lookalikes are made (up to a second each)."""
    with Progress("lookalikes", total=len(domains), unit="domains", noun="domains", enabled=enabled) as bar:
        for domain in domains:
            yield domain
            bar.object_done()


@operation_command(ops_assets, "list")
def ops_assets_list(ctx: click.Context, operation: str, as_json: bool) -> None:
    """List the protected assets of an operation."""
    node = node_of(ctx)
    rows = list_assets(node, find(node.store, operation))
    emit(as_json, {"assets": rows},
         "\n".join(f"{r['kind']:<9} {r['value']}" for r in rows) or "No protected assets yet.")


@operation_command(ops, "alerts")
@click.option("--since", default=None, metavar="WHEN",
              help="Only alerts on objects added in the last duration (12h, 2d) or after an ISO time.")
def ops_alerts(ctx: click.Context, operation: str, since: str | None, as_json: bool) -> None:
    """Alerts: shared objects that refer to a protected asset (rule exact, containment, lookalike or
    relationship), with the object's producer."""
    node = node_of(ctx)
    with collector_paused():
        found = alerts_of(node, find(node.store, operation), since_micros(since))
    rows = [a.to_json() for a in found]
    text = "\n".join(f"{a.added[:19]}Z  {a.rule:<12} {a.asset:<28} {a.object_type} {a.object_name or a.object_id}"
                     f"  by {a.producer or '-'}  ({a.matched_name or a.matched})" for a in found) or "No alerts."
    emit(as_json, {"alerts": rows}, text)


@operation_command(ops, "declassify")
@click.argument("object_id")
@click.option("--to", "to", type=tlp_level, required=True, help="The lower TLP to publish it at.")
@click.option("--approved-by", required=True, help="Who approved the release (recorded in the audit chain).")
def ops_declassify(ctx: click.Context, operation: str, object_id: str, to: str, approved_by: str,
                   as_json: bool) -> None:
    """Publish a new version of an operation's object at a lower TLP, with the approval audited."""
    node = node_of(ctx)
    done = declassify(node, find(node.store, operation), object_id, to, approved_by)
    emit(as_json, done, f"{object_id} now TLP:{done['to'].upper()} (was TLP:{done['from'].upper()}), "
                        f"approved by {done['approved_by']}")


@operation_command(ops, "scan-logs")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mapping", "mapping_name", default=None,
              help="Force a shipped log mapping, as `kizuna match` does (default: detect per line).")
def ops_scan_logs(ctx: click.Context, operation: str, logs: tuple[Path, ...], mapping_name: str | None,
                  as_json: bool) -> None:
    """Check local DNS, proxy or TLS logs (the `kizuna match` formats) against the protected assets and
    their lookalikes; each hit is stored as observed data and shows in `ops alerts`."""
    node = node_of(ctx)
    watch = operation_watch(node, operation)
    mappings = shipped_mappings()
    if mapping_name is not None and mapping_name not in mappings:
        raise CliError(f"unknown mapping {mapping_name!r}; shipped: {', '.join(sorted(mappings))}")
    reader = LogReader(mappings.values(), forced=mapping_name)
    # No indicators: the detection fast path runs for the watch alone (the same pass as `match --operation`).
    matcher = DetectionEngine(node.identity().get("id") or LOCAL_IDENTITY_ID).line_matcher(reader, watch.log)
    total = sum(_size(path) for path in logs)
    unreadable: list[tuple[Path, str]] = []  # reported after the others are scanned: one log does not stop the run
    with Progress("scan", total=total or None, unit="bytes", noun="lines",
                  enabled=progress_wanted(as_json, False)) as bar:
        for path in logs:
            reader.start_input()
            known = len(reader.stats.problems)
            try:
                with path.open("rb") as lines:
                    for _ in matcher.alerts(tracked(lines, bar)):
                        pass
            except OSError as exc:
                unreadable.append((path, exc.strerror or str(exc)))
                continue
            for problem in reader.stats.problems[known:]:
                problem.file = str(path)
    stats = reader.stats
    if unreadable and stats.events == 0:  # nothing else to show: the unreadable log is the failure
        path, reason = unreadable[0]
        more = f" ({len(unreadable)} of {count(len(logs), 'log')} could not be read)" if len(unreadable) > 1 else ""
        raise CliError(f"cannot read {path}: {reason}{more}", code="io", file=str(path))
    try:  # as for `kizuna match`: nothing read, or nothing readable, is no clean bill of health
        require_log_lines(stats)
    except NothingToMatch as exc:
        raise CliError(str(exc), code=exc.code, file=exc.file, line=exc.line) from None
    rows = watch.store()
    text = "\n".join(f"{r['count']:>6}  {r['rule']:<12} {r['value']}  (protected: {r['asset']})" for r in rows)
    unread = stats.problem_count + stats.skipped
    # The unparsable lines by file and line, as `kizuna match` names them (the first 20; --json the first 100).
    named = [{"file": p.file, "line": p.line, "reason": p.reason} for p in stats.problems[:100]]
    emit(as_json, {"lines": stats.lines, "unparsed": stats.problem_count, "unmapped": stats.skipped,
                   "unparsed_lines": named, "hits": rows,
                   "unreadable": [{"file": str(path), "reason": reason} for path, reason in unreadable]},
         f"{stats.lines} log lines read" + (f" ({unread} unparsable or of no known format)" if unread else "")
         + "".join(f"\n  {p['file']}:{p['line']}: {p['reason']}" for p in named[:20])
         + f"\n{len(rows)} values hit the watchlist" + (f":\n{text}" if rows else "."))
    if unreadable:
        if not as_json:
            for path, reason in unreadable:
                click.echo(f"kizuna ops scan-logs: cannot read {path}: {reason}", err=True)
            click.echo(f"kizuna ops scan-logs: {len(unreadable)} of {count(len(logs), 'log')} could not be read "
                       "(listed above)", err=True)
        raise click.exceptions.Exit(1)


def _size(path: Path) -> int:
    """The log's size for the progress bar; 0 for one that cannot be read (it is reported when its turn comes)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


@operation_command(ops, "promote")
@click.argument("domain")
def ops_promote(ctx: click.Context, operation: str, domain: str, as_json: bool) -> None:
    """Make an indicator of a watched lookalike domain, shared in the operation's intel collection."""
    node = node_of(ctx)
    made = promote(node, find(node.store, operation), domain)
    emit(as_json, {"id": made["id"], "pattern": made["pattern"]}, f"Indicator {made['id']} {made['pattern']}")


@ops.group("incident")
def ops_incident() -> None:
    """Incidents of an operation (STIX incident objects): add, update, link."""


@operation_command(ops_incident, "add")
@click.option("--name", required=True, help="A short name for the incident.")
@click.option("--description", default=None, help="What happened, for the partners.")
@click.option("--assign", default=None, help="The partner team (organisation name) handling it.")
@click.option("--determination", type=click.Choice(DETERMINATIONS), default="suspected", show_default=True,
              help="What is known of the outcome (the Incident Core Extension's determination).")
def ops_incident_add(ctx: click.Context, operation: str, name: str, description: str | None, assign: str | None,
                     determination: str, as_json: bool) -> None:
    """Open an incident (STIX incident with the Incident Core Extension) in the incidents collection."""
    node = node_of(ctx)
    made = add_incident(node, find(node.store, operation), name, description, assign, determination)
    emit(as_json, {"id": made["id"], "status": status_of(made), "determination": determination_of(made)},
         f"Incident {made['id']} opened")


@operation_command(ops_incident, "update")
@click.argument("incident_id")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="The incident's new status.")
@click.option("--assign", default=None, help="The partner team (organisation name) now handling it.")
@click.option("--determination", type=click.Choice(DETERMINATIONS), default=None,
              help="What is now known of the outcome (the Incident Core Extension's determination).")
def ops_incident_update(ctx: click.Context, operation: str, incident_id: str, status: str | None,
                        assign: str | None, determination: str | None, as_json: bool) -> None:
    """Store a new version of an incident with a new status or determination, or hand it to a team."""
    node = node_of(ctx)
    made = update_incident(node, find(node.store, operation), incident_id, status, assign, determination)
    emit(as_json, {"id": made["id"], "status": status_of(made), "determination": determination_of(made),
                   "modified": made["modified"]},
         f"Incident {made['id']} is {status_of(made)}")


@operation_command(ops_incident, "link")
@click.argument("incident_id")
@click.argument("targets", nargs=-1, required=True)
def ops_incident_link(ctx: click.Context, operation: str, incident_id: str, targets: tuple[str, ...],
                      as_json: bool) -> None:
    """Link an incident to indicators, sightings or assets (by STIX id) with related-to relationships."""
    node = node_of(ctx)
    links = link_incident(node, find(node.store, operation), incident_id, list(targets))
    emit(as_json, {"relationships": [r["id"] for r in links]}, f"{len(links)} objects linked to {incident_id}")


@operation_command(ops, "report")
@click.option("--since", default="12h", show_default=True, metavar="WHEN",
              help="Start of the shift: a duration back from now (12h) or an ISO date/time.")
@click.option("--lang", type=click.Choice(["en", "ja"]), default="en", show_default=True,
              help="Language of the Markdown (ja also adds a STIX language-content).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown to this file instead of standard output.")
@click.option("--html", "html_output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as an HTML page with a chart of activity per hour.")
def ops_report(ctx: click.Context, operation: str, since: str, lang: str, output: Path | None,
               html_output: Path | None, as_json: bool) -> None:
    """Shift hand-over report: stored as a STIX report for the partners, printed as Markdown."""
    node = node_of(ctx)
    start = since_micros(since)
    translate = translations(lang).gettext if lang != "en" else None  # the console's catalog (kizuna.po)
    written = [path for path in (output, html_output) if path is not None]
    if output is not None and html_output is not None and output.resolve() == html_output.resolve():
        raise CliError("-o and --html name the same file: give each its own", code="usage")
    for path in written:  # both refused before either is begun
        check_output_path(path)
    with ExitStack() as opened:
        # The files are begun (under temporary names) before the report is stored, which is shared with the
        # partners at once: a place that cannot be written fails the command with nothing stored; a failure
        # while storing leaves no file.
        handles = {path: opened.enter_context(output_stream(path)) for path in written}
        with collector_paused():
            made = shift_report(node, find(node.store, operation), start if start is not None else default_since(),
                                lang, translate)
        for wanted, text in ((output, made.markdown), (html_output, made.html)):
            if wanted is not None:
                handles[wanted].write(text.encode())
    emit(as_json, {"report": made.stix[0]["id"], "objects": [o["id"] for o in made.stix],
                   "markdown": made.markdown, "written": [str(path) for path in written]},
         made.markdown if output is None else f"Report written to {' and '.join(map(str, written))}")


def register(group: click.Group) -> None:
    group.add_command(ops)
