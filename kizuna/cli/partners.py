"""``kizuna partners …`` and ``kizuna sync``: configure partner nodes, sync once, or run the worker."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import click

from kizuna.cli.common import CliError, emit, json_option, node_of
from kizuna.federation.config import CollectionMapping, ConfigProblem, PartnerConfig
from kizuna.federation.state import FederationState
from kizuna.federation.sync import Syncer
from kizuna.federation.worker import LEASE_NAME, run_worker, stop_with_parent
from kizuna.stix.timestamps import format_timestamp


def _when(micros: int | None) -> str | None:
    return format_timestamp(micros) if micros else None


def _status_payload(state: FederationState, name: str) -> dict[str, Any]:
    status = state.get_status(name)
    return {
        "state": status.state, "consecutive_failures": status.failures,
        "next_attempt": _when(status.next_attempt), "last_attempt": _when(status.last_attempt),
        "last_success": _when(status.last_success), "last_error": status.last_error,
        "pulled": status.pulled, "pushed": status.pushed, "quarantined": status.quarantined,
    }


@click.group()
def partners() -> None:
    """Partner nodes this node syncs with over TAXII 2.1."""


@partners.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The partner's TAXII API root URL, e.g. https://host/main/.")
@click.option("--map", "maps", multiple=True, required=True,
              help="LOCAL=REMOTE[:pull|push|both] collection ids or aliases (repeatable).")
@click.option("--token", default=None, help="Bearer token the partner issued to this node.")
@click.option("--basic", default=None, help="user:password, for servers that only take HTTP Basic.")
@click.option("--cert", default=None, help="Client certificate (PEM) for mutual TLS.")
@click.option("--key", default=None, help="Key of the client certificate (PEM).")
@click.option("--ca", default=None, help="CA file the partner's server certificate must chain to (pinning).")
@click.option("--org", default=None, help="The partner's organisation here (name or identity id).")
@click.option("--agreement", default=None, help="Agreement id the partner receives under.")
@click.option("--schedule", default=300, type=int, show_default=True, help="Seconds between scheduled syncs.")
@click.option("--page-size", default=1000, type=int, show_default=True, help="Objects asked for per TAXII page.")
@json_option
@click.pass_context
def partners_add(ctx: click.Context, name: str, url: str, maps: tuple[str, ...], token: str | None,
                 basic: str | None, cert: str | None, key: str | None, ca: str | None, org: str | None,
                 agreement: str | None, schedule: int, page_size: int, as_json: bool) -> None:
    """Add a partner node."""
    node = node_of(ctx)
    organisation = None
    if org is not None:
        found = node.store.get_organisation(org)
        if found is None:
            raise ConfigProblem(f"no organisation {org!r}; create it with `kizuna orgs create`")
        organisation = found.id
    mappings = tuple(CollectionMapping.parse(text) for text in maps)
    for mapping in mappings:
        node.find_collection(mapping.local)
    config = PartnerConfig(
        name=name, api_root_url=url, mappings=mappings, token=token, basic_auth=basic, client_cert=cert,
        client_key=key, ca_file=ca, organisation=organisation, agreement=agreement, schedule_s=schedule,
        page_size=page_size,
    )
    FederationState(node.store).add_partner(config)
    emit(as_json, config.public(), f"Partner {name} added ({len(mappings)} collection mapping(s))")


@partners.command("list")
@json_option
@click.pass_context
def partners_list(ctx: click.Context, as_json: bool) -> None:
    """List partners with their sync state."""
    state = FederationState(node_of(ctx).store)
    rows = [{**p.public(), "status": _status_payload(state, p.name)} for p in state.list_partners()]
    emit(as_json, {"partners": rows}, "\n".join(
        f"{r['name']:<16} {r['status']['state']:<8} {r['api_root_url']}  "
        f"pulled {r['status']['pulled']}, pushed {r['status']['pushed']}, "
        f"quarantined {r['status']['quarantined']}"
        + (f"  error: {r['status']['last_error']}" if r["status"]["last_error"] else "")
        for r in rows
    ) or "No partners.")


@partners.command("show")
@click.argument("name")
@json_option
@click.pass_context
def partners_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one partner: configuration, status, cursors and recent quarantine."""
    state = FederationState(node_of(ctx).store)
    partner = state.get_partner(name)
    if partner is None:
        raise CliError(f"no partner {name!r}")
    payload = {
        **partner.public(),
        "status": _status_payload(state, name),
        "cursors": [
            {"direction": k.direction, "local": k.local_collection, "remote": k.remote_collection,
             "position": position, "updated": _when(at)}
            for k, position, at in state.cursors(name)
        ],
        "quarantine": state.quarantined(name, limit=20),
    }
    status = payload["status"]
    lines = [f"{name}  {partner.api_root_url}", f"  state:        {status['state']}"
             f" (consecutive failures {status['consecutive_failures']})",
             f"  last success: {status['last_success'] or 'never'}",
             f"  next attempt: {status['next_attempt'] or 'now'}",
             f"  totals:       pulled {status['pulled']}, pushed {status['pushed']}, "
             f"quarantined {status['quarantined']}"]
    if status["last_error"]:
        lines.append(f"  last error:   {status['last_error']}")
    lines += [f"  {m.direction.value:<4} {m.local} <-> {m.remote}" for m in partner.mappings]
    lines += [f"  quarantined: {q['id'] or '?'} {q['version'] or ''}: {q['reason']}" for q in payload["quarantine"]]
    emit(as_json, payload, "\n".join(lines))


@partners.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def partners_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove a partner (received objects and their provenance stay)."""
    if not FederationState(node_of(ctx).store).remove_partner(name):
        raise CliError(f"no partner {name!r}")
    emit(as_json, {"name": name, "removed": True}, f"Partner {name} removed")


@click.command("sync")
@click.argument("partner", required=False)
@click.option("--loop", is_flag=True, help="Run the scheduled sync worker until stopped.")
@click.option("--tick", default=2.0, type=float, show_default=True, help="Worker poll interval (seconds).")
@click.option("--parent-pid", default=None, type=int, hidden=True)
@json_option
@click.pass_context
def sync_command(ctx: click.Context, partner: str | None, loop: bool, tick: float, parent_pid: int | None,
                 as_json: bool) -> None:
    """Sync with PARTNER (or every partner) once now; with --loop, run the scheduled worker."""
    node = node_of(ctx)
    if loop:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if parent_pid is not None:
            stop_with_parent()
            if os.getppid() != parent_pid:
                return
        run_worker(node, stop, tick_s=tick, parent_pid=parent_pid)
        return
    syncer = Syncer(node)
    names = [partner] if partner else [p.name for p in syncer.state.list_partners()]
    holder = syncer.state.lease_holder(LEASE_NAME)
    reports = []
    for name in names:
        try:
            reports.append(syncer.sync_partner(name, force=True).as_dict())
        except KeyError:
            raise CliError(f"no partner {name!r}") from None
    payload = {"runs": reports, "worker": holder[0] if holder else None}
    emit(as_json, payload, "\n".join(
        f"{r['partner']}: pulled {r['pulled']} new ({r['duplicates']} already here), pushed {r['pushed']}, "
        f"quarantined {r['quarantined'] + r['push_refused']}" + (f"; FAILED: {r['error']}" if r["error"] else "")
        for r in reports
    ) or "No partners.")
    if any(r["error"] for r in reports):
        ctx.exit(1)


def register(group: click.Group) -> None:
    group.add_command(partners)
    group.add_command(sync_command)
