"""``kizuna partners …`` and ``kizuna sync``: configure partner nodes, sync once, or run the worker."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from kizuna.cli.common import CliError, FiniteFloat, aligned, emit, json_option, node_of
from kizuna.core.bulk_import import set_aside_long_lived
from kizuna.core.node import Node
from kizuna.core.partner_health import PartnerHealth, partner_health
from kizuna.federation.admin import AddedPartner, add_misp_feed_partner, add_partner, remove_partner
from kizuna.federation.config import (
    DEFAULT_SCHEDULE_S,
    PAGE_SIZE_RANGE,
    SCHEDULE_RANGE_S,
    ConfigProblem,
    PartnerConfig,
)
from kizuna.federation.runs import RUN_LEASE_TTL_RANGE_S, RUN_LEASE_TTL_S, worker_id
from kizuna.federation.state import FederationState
from kizuna.federation.sync import RunReport, Syncer
from kizuna.federation.worker import LEASE_NAME, TICK_RANGE_S, TICK_S, run_worker, stop_with_parent
from kizuna.formats.base import ConversionReport
from kizuna.stix.timestamps import format_timestamp


@click.group()
def partners() -> None:
    """Partner nodes this node syncs with over TAXII 2.1."""


@partners.command("add")
@click.argument("name")
@click.option("--url", default=None,
              help="The partner's TAXII API root URL (http or https, ending with '/'), e.g. https://host/main/.")
@click.option("--map", "maps", multiple=True,
              help="LOCAL=REMOTE[:pull|push|both] collection ids or aliases (repeatable; with --url); "
                   "LOCAL must exist here; pull when no direction is given.")
@click.option("--misp-feed", "misp_feed", default=None,
              help="Instead of --url: a MISP feed (http(s) URL, file:// URL or directory holding manifest.json) "
                   "whose events are imported as STIX.")
@click.option("--collection", "-c", default=None,
              help="With --misp-feed: the local collection (id or alias) that receives the feed's events.")
@click.option("--token", default=None, help="Bearer token the partner issued to this node (printable ASCII).")
@click.option("--basic", default=None, help="user:password, for servers that only take HTTP Basic.")
@click.option("--cert", default=None, help="Client certificate (PEM file) for mutual TLS.")
@click.option("--key", default=None, help="Key of the client certificate (PEM file).")
@click.option("--ca", default=None, help="CA file the partner's server certificate must chain to.")
@click.option("--pin", default=None, metavar="SHA256",
              help="Accept only the partner server certificate with this SHA-256 fingerprint (https only).")
@click.option("--org", default=None, help="The partner's organisation here (name or identity id).")
@click.option("--agreement", default=None, help="Agreement id the partner receives under.")
@click.option("--schedule", default=DEFAULT_SCHEDULE_S, type=int, show_default=True,
              help=f"Seconds between scheduled syncs ({SCHEDULE_RANGE_S[0]}-{SCHEDULE_RANGE_S[1]}).")
@click.option("--page-size", default=1000, type=int, show_default=True,
              help=f"Objects per page requested or sent ({PAGE_SIZE_RANGE[0]}-{PAGE_SIZE_RANGE[1]}).")
@click.option("--no-check", "no_check", is_flag=True,
              help="Do not ask the partner before adding it (for a partner that is not up yet, or a feed "
                   "directory not mounted yet).")
@json_option
@click.pass_context
def partners_add(ctx: click.Context, name: str, url: str | None, maps: tuple[str, ...], misp_feed: str | None,
                 collection: str | None, token: str | None, basic: str | None, cert: str | None, key: str | None,
                 ca: str | None, pin: str | None, org: str | None, agreement: str | None, schedule: int,
                 page_size: int, no_check: bool, as_json: bool) -> None:
    """Add a partner: a TAXII node (--url, --map) or a MISP feed (--misp-feed, --collection).

    The whole configuration is checked before it is stored; then the partner is asked once (a few seconds
    at most): a partner that refuses the token, or lacks a mapped collection or the feed's manifest.json,
    is refused, and one that cannot be reached now is added with a note.
    """
    if (url is None) == (misp_feed is None):
        raise CliError("give either --url (a TAXII partner) or --misp-feed (a MISP feed), not both or neither",
                       code="usage", exit_code=2)
    if misp_feed is not None:
        if maps or org or agreement or pin:
            raise CliError("--map, --org, --agreement and --pin apply to TAXII partners; a MISP feed takes "
                           "--collection",
                           code="usage", exit_code=2)
        if collection is None:
            raise CliError("--misp-feed needs --collection (the local collection receiving the events)",
                           code="usage", exit_code=2)
        added = add_misp_feed_partner(
            node_of(ctx), name, misp_feed, collection, token=token, basic_auth=basic, client_cert=cert,
            client_key=key, ca_file=ca, schedule_s=schedule, ask_partner=not no_check,
        )
        _emit_added(as_json, added, f"MISP feed partner {name} added (events go to {collection})")
        return
    assert url is not None
    if collection is not None:
        raise CliError("--collection applies to --misp-feed; a TAXII partner takes --map LOCAL=REMOTE",
                       code="usage", exit_code=2)
    if not maps:
        raise CliError("--url needs at least one --map LOCAL=REMOTE[:pull|push|both]", code="usage", exit_code=2)
    added = add_partner(
        node_of(ctx), name, url, maps, token=token, basic_auth=basic, client_cert=cert, client_key=key,
        ca_file=ca, organisation=org, agreement=agreement, schedule_s=schedule, page_size=page_size,
        pin_sha256=pin, ask_partner=not no_check,
    )
    _emit_added(as_json, added, f"Partner {name} added ({len(added.config.mappings)} collection mapping(s))")


def _emit_added(as_json: bool, added: AddedPartner, line: str) -> None:
    """The added partner's configuration, whether it was asked, and a note for each thing the asking found."""
    if not added.asked:
        line += "; not checked with the partner (--no-check)"
    elif not added.notes:
        line += "; the partner answered as configured"
    emit(as_json, {**added.config.public(), "checked": added.asked, "notes": added.notes},
         line + "".join(f"\nnote: {note}" for note in added.notes))


def _named(row: dict[str, Any], node: Node) -> dict[str, Any]:
    """The partner's organisation by name beside its identity id (None when it has none, or it is unknown)."""
    organisation = row.get("organisation")
    row["organisation_name"] = node.identity_names([organisation]).get(organisation) if organisation else None
    return row


#: The health words as the docs and the console say them, where the JSON's differ.
_HEALTH_WORDS = {"never": "not synced yet", "unusable": "unusable configuration"}


def _health_fields(health: PartnerHealth | None) -> dict[str, Any]:
    """The health word and push backlog of ``core/partner_health.py`` (None: no push mapping)."""
    if health is None:
        return {}
    return {"health": health.health, "push_backlog": health.push_backlog,
            "push_backlog_more": health.push_backlog_more}


def _table(rows: list[dict[str, Any]]) -> str:
    """One partner a line in aligned columns under a header, as `tokens list` prints them, each followed by its
    health, organisation, last run and errors, indented."""
    if not rows:
        return "No partners; add one with `kizuna partners add`."
    heads = aligned([("NAME", "STATE", "KIND", "URL")] + [
        (r["name"], r["status"]["state"], r.get("kind", "?"), r.get("api_root_url") or "(unusable configuration)")
        for r in rows])
    return "\n".join([heads[0], *(head + _details(row) for head, row in zip(heads[1:], rows, strict=True))])


def _details(row: dict[str, Any]) -> str:
    """The indented lines under a partner's line in `partners list`."""
    status = row["status"]
    line = ""
    if row.get("health"):
        line += f"\n    health: {_HEALTH_WORDS.get(row['health'], row['health'])}"
        if row.get("push_backlog") is not None:
            line += f"; push backlog {row['push_backlog']:,}{'+' if row['push_backlog_more'] else ''}"
    if row.get("organisation"):
        line += f"\n    organisation {row['organisation_name'] or row['organisation']}"
        line += f", agreement {row['agreement']}" if row.get("agreement") else ""
    line += (f"\n    last success {status['last_success'] or 'never'}; next attempt {status['next_attempt'] or 'now'}"
             f" (consecutive failures {status['consecutive_failures']}); pulled {status['pulled']}, "
             f"pushed {status['pushed']}, quarantined {status['quarantined']}")
    if row.get("config_error"):
        line += f"\n    configuration: {row['config_error']}"
    if status["last_error"]:
        line += f"\n    last error: {status['last_error']}"
    line += "".join(f"\n    note: {note}" for note in status["notes"])
    return line


@partners.command("list")
@json_option
@click.pass_context
def partners_list(ctx: click.Context, as_json: bool) -> None:
    """List partners with their sync state and health: last success, last error, next attempt (after backoff),
    and the push backlog (versions a push would send now, as the console's Partners page counts them)."""
    node = node_of(ctx)
    state = FederationState(node.store)
    health = {entry.name: entry for entry in partner_health(node)}
    rows = [
        _named({**(config.public() if config is not None else {"name": name, "config_error": problem}),
                "status": state.status_view(name), **_health_fields(health.get(name))}, node)
        for name, config, problem in state.partner_entries()
    ]
    emit(as_json, {"partners": rows}, _table(rows))


@partners.command("show")
@click.argument("name")
@json_option
@click.pass_context
def partners_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one partner: configuration, status, last run, cursors and recent quarantine."""
    node = node_of(ctx)
    state = FederationState(node.store)
    if name not in state.partner_names():
        raise CliError(f"no partner {name!r}", code="not-found")
    try:
        partner: PartnerConfig | None = state.get_partner(name)
        config: dict[str, Any] = _named(partner.public(), node) if partner is not None else {"name": name}
    except ConfigProblem as exc:
        partner, config = None, {"name": name, "config_error": str(exc)}
    names = {c.id: c.alias or c.title for c in node.store.list_collections()}
    payload = {
        **config,
        "status": state.status_view(name),
        "cursors": [
            {"direction": k.direction, "local": k.local_collection, "local_name": names.get(k.local_collection),
             "remote": k.remote_collection, "position": position,
             "updated": format_timestamp(at) if at else None}
            for k, position, at in state.cursors(name)
        ],
        "quarantine": state.quarantined(name, limit=20),
    }
    status = payload["status"]
    running = f" in {status['running_in']}" if status["running_in"] else ""
    lines = [f"{name}  {partner.kind + ' ' + partner.api_root_url if partner else '(unusable configuration)'}",
             f"  state:        {status['state']}{running} (consecutive failures {status['consecutive_failures']})",
             f"  last success: {status['last_success'] or 'never'}",
             f"  last attempt: {status['last_attempt'] or 'never'}",
             f"  next attempt: {status['next_attempt'] or 'now'}",
             f"  totals:       pulled {status['pulled']}, pushed {status['pushed']}, "
             f"quarantined {status['quarantined']}"]
    if partner is not None and (partner.organisation or partner.agreement):
        lines.append(f"  organisation: {config['organisation_name'] or partner.organisation or '-'}; "
                     f"agreement {partner.agreement or '-'}")
    if config.get("config_error"):
        lines.append(f"  configuration: {config['config_error']}")
    if status["last_error"]:
        lines.append(f"  last error:   {status['last_error']}")
    lines += [f"  note:         {note}" for note in status["notes"]]
    if partner is not None and partner.is_misp_feed:
        lines.append(f"  events of the feed go to collection {partner.mappings[0].local}")
    elif partner is not None:
        arrows = {"pull": "<-", "push": "->", "both": "<->"}  # which way the objects go
        lines += [f"  {m.direction.value:<4} {m.local} {arrows[m.direction.value]} {m.remote}"
                  for m in partner.mappings]
    # Each cursor as docs/federation.md names it (pull, push, push-terms, …): where the next run goes on from.
    lines += [f"  cursor {c['direction']:<11} {c['local_name'] or c['local']} ~ {c['remote']}: "
              f"{_shortened(c['position'])} (updated {c['updated'] or 'never'})" for c in payload["cursors"]]
    lines += [f"  quarantined: {q['id'] or '?'} {q['version'] or ''}: {q['reason']}" for q in payload["quarantine"]]
    emit(as_json, payload, "\n".join(lines))


def _shortened(text: str, width: int = 100) -> str:
    """A cursor's position on one line: a pull position or a terms digest whole, a long ``next`` token cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


@partners.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def partners_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove a partner (received objects and their provenance stay)."""
    if not remove_partner(node_of(ctx), name):
        raise CliError(f"no partner {name!r}", code="not-found")
    emit(as_json, {"name": name, "removed": True}, f"Partner {name} removed")


ProgressHook = Callable[[RunReport], None]


def convert_misp_event(data: bytes, name: str) -> ConversionReport:
    """MISP event JSON -> STIX with its loss report: the converter the sync injects into federation."""
    from kizuna.formats.misp_in import read_misp  # misp-stix is heavy: load it only for a feed

    return read_misp(data, name)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], tuple[ProgressHook, Callable[[], None]]] | None]:
    """A rich display on stderr (TTY only): per partner, objects pulled and pushed, and the rate."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    display = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("pulled {task.fields[pulled]} (+{task.fields[duplicates]} already here), "
                   "pushed {task.fields[pushed]}, {task.fields[rate]}"),
        TimeElapsedColumn(), console=Console(stderr=True),
    )

    def track(name: str) -> tuple[ProgressHook, Callable[[], None]]:
        task = display.add_task(name, total=None, pulled=0, duplicates=0, pushed=0, rate="0 objects/s")
        started = time.monotonic()

        def update(report: RunReport) -> None:
            moved = report.pulled + report.duplicates + report.pushed
            rate = moved / max(time.monotonic() - started, 1e-3)
            display.update(task, pulled=report.pulled, duplicates=report.duplicates, pushed=report.pushed,
                           rate=f"{rate:,.0f} objects/s")

        def done() -> None:
            display.update(task, total=1, completed=1)

        return update, done

    with display:
        yield track


def _run_line(run: dict[str, Any]) -> str:
    line = (f"{run['partner']}: pulled {run['pulled']} new ({run['duplicates']} already here), pushed {run['pushed']}, "
            f"quarantined {run['quarantined'] + run['push_refused']}")
    # What else moved, when anything did: recalls received and sent, sightings sent back to their producer.
    moved = [f"{label} {run[key]}" for key, label in (("recalled", "recalled"), ("recalls_sent", "recalls sent"),
                                                      ("sightings_flowed", "sightings sent back"))
             if run.get(key)]
    if moved:
        line += ", " + ", ".join(moved)
    feed = next((m for m in run["mappings"] if m.get("direction") == "misp-feed"), None)
    if feed is not None and feed["manifest"] == "unchanged":
        line += "; MISP feed unchanged since the last complete run (manifest not modified)"
    elif feed is not None:
        line += (f"; MISP events imported {run['events']}, failed {run['events_failed']}, "
                 f"{run['losses']} conversion loss(es) in the audit log")
    if run["error"]:  # the failure names its partner already at the start of the line
        line += f"; FAILED: {str(run['error']).removeprefix(run['partner'] + ': ')}"
    return line + "".join(f"\n  note: {note}" for note in run["notes"])


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``, from a thread of its own. A Python handler that set the event itself
    runs in the main thread between two bytecodes, possibly inside ``stop.wait`` or an earlier handler's
    ``stop.set`` with the event's lock held; a second signal then (the supervisor's SIGTERM and the
    parent-death SIGTERM often arrive together) deadlocked the worker for good. Here the handlers do
    nothing; the interpreter writes each signal to a pipe, and the thread reading it sets the event."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)

    def watch() -> None:
        os.read(read_end, 1)
        stop.set()

    threading.Thread(target=watch, name="kizuna-stop-signals", daemon=True).start()


@click.command("sync")
@click.argument("partner", required=False)
@click.option("--loop", is_flag=True, help="Run the scheduled sync worker until stopped.")
@click.option("--tick", default=TICK_S, type=FiniteFloat(*TICK_RANGE_S), show_default=True,
              help=f"Worker poll interval (seconds, {TICK_RANGE_S[0]:g}-{TICK_RANGE_S[1]:g}).")
@click.option("--lease-ttl", default=RUN_LEASE_TTL_S, type=FiniteFloat(*RUN_LEASE_TTL_RANGE_S), show_default=True,
              help="Seconds a run counts as running after its last sign of life (a killed run is shown as "
                   f"interrupted once they pass; {RUN_LEASE_TTL_RANGE_S[0]:g}-{RUN_LEASE_TTL_RANGE_S[1]:g}).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display on stderr.")
@click.option("--parent-pid", default=None, type=int, hidden=True,
              help="Exit when this process (the server that started the worker) is gone.")
@click.option("--worker-tag", default=None, hidden=True,
              help="Tag of this worker's lease holder, chosen by the supervisor in `kizuna serve`.")
@json_option
@click.pass_context
def sync_command(ctx: click.Context, partner: str | None, loop: bool, tick: float, lease_ttl: float, quiet: bool,
                 parent_pid: int | None, worker_tag: str | None, as_json: bool) -> None:
    """Sync with PARTNER (or every partner) once now; with --loop, run the scheduled worker."""
    node = node_of(ctx)
    if loop:
        stop = threading.Event()
        _stop_on_signals(stop)
        if parent_pid is not None:
            stop_with_parent()
            if os.getppid() != parent_pid:
                return
        set_aside_long_lived()  # a process that stores partners' pages for as long as the server runs
        run_worker(node, stop, tick_s=tick, parent_pid=parent_pid, holder=worker_id(worker_tag),
                   run_lease_ttl_s=lease_ttl, misp_converter=convert_misp_event)
        return
    state = FederationState(node.store)
    names = [partner] if partner is not None else state.partner_names()
    if partner is not None and partner not in state.partner_names():
        raise CliError(f"no partner {partner!r}", code="not-found")
    holder = state.lease_holder(LEASE_NAME)
    reports = []
    with _progress(not (as_json or quiet)) as track:
        for name in names:
            update, done = track(name) if track is not None else (None, None)
            syncer = Syncer(node, lease_ttl_s=lease_ttl, progress=update, misp_converter=convert_misp_event)
            try:
                reports.append(syncer.sync_partner(name, force=True).as_dict())
            except KeyError:
                raise CliError(f"no partner {name!r}", code="not-found") from None
            if done is not None:
                done()
    payload: dict[str, Any] = {"runs": reports, "worker": holder[0] if holder else None}
    failed = [r for r in reports if r["error"]]
    # The report of every partner, then the failure in one line: one bad partner never hides the others.
    summary = f"{len(failed)} of {len(reports)} partners failed; the first: {failed[0]['error']}" if failed else ""
    if failed:
        payload["error"] = {"code": "sync", "message": summary, "file": None, "line": None}
    emit(as_json, payload, "\n".join(_run_line(r) for r in reports) or "No partners.")
    if failed:
        if not as_json:
            click.echo(f"kizuna sync: {summary}", err=True)
        ctx.exit(1)


def register(group: click.Group) -> None:
    group.add_command(partners)
    group.add_command(sync_command)
