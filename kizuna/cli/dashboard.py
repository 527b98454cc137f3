"""``kizuna dashboard`` and ``kizuna preview``: the console's numbers and share preview in a terminal.

Thin: ``kizuna.core.dashboard`` counts through the same visibility check as TAXII, and
``Node.share_preview`` asks the policy engine (``kizuna.policy.preview``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from kizuna.cli.common import CliError, emit, json_option, node_of, token_id_type
from kizuna.core import browse
from kizuna.core.dashboard import Dashboard, DayCount, Item, build_dashboard
from kizuna.core.listing import display_name
from kizuna.core.principal import NODE_ADMIN
from kizuna.policy.preview import summarise
from kizuna.stix.validation import check_object


@click.command("dashboard")
@click.option("--as-token-id", default=None, metavar="ID", type=token_id_type,
              help="Count as this token, with its rights (see `kizuna tokens list`).")
@click.option("--as-org", default=None, metavar="NAME",
              help="Count as this organisation reading every collection; markings and its agreements still "
                   "decide. Default: the node's own organisation.")
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True,
              help="How many days (UTC, today included) the received and shared counts cover.")
@click.option("--newest", type=click.IntRange(1, 100), default=10, show_default=True,
              help="How many of the newest reports, indicators and sightings to list.")
@json_option
@click.pass_context
def dashboard(ctx: click.Context, as_token_id: str | None, as_org: str | None, days: int, newest: int,
              as_json: bool) -> None:
    """Objects received and shared per day by partner and TLP, the newest reports and indicators,
    partners' sightings of this node's indicators and sync health, as a principal may see them."""
    node = node_of(ctx)
    acting = browse.acting_as(node, as_token_id, as_org)
    board = build_dashboard(node, acting.principal, days, newest)
    emit(as_json, board.as_dict(), _text(board, acting.described))


def _totals(counts: list[DayCount]) -> list[str]:
    totals: dict[tuple[str, str], int] = {}
    for entry in counts:
        totals[(entry.partner, entry.tlp)] = totals.get((entry.partner, entry.tlp), 0) + entry.objects
    if not totals:
        return ["  none"]
    # The name column widens to the longest name, so a long producer does not push its row askew.
    width = max(32, *(len(partner) for partner, _ in totals))
    return [f"  {partner:<{width}} {tlp:<18} {count:>9,}" for (partner, tlp), count in sorted(totals.items())]


def _by_partner(board: Dashboard) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for entry in board.received_from_partners:
        totals[entry.partner] = totals.get(entry.partner, 0) + entry.objects
    return sorted(totals.items())


def _items(items: list[Item]) -> list[str]:
    if not items:
        return ["  none"]
    return [f"  {item.date_added[:19]}  {(display_name(item.object) or str(item.object.get('id')))[:60]}"
            for item in items]  # the one name rule of every listing: a nameless indicator by its pattern


def _text(board: Dashboard, described: str) -> str:
    lines = [f"Dashboard of {described}, {board.days} day(s) since {board.since[:10]}",
             "Received (versions, by producer and TLP):", *_totals(board.received),
             *(["Received from partner nodes:", *(f"  {p:<32} {n:>9,}" for p, n in _by_partner(board))]
               if board.received_from_partners else []),
             "Shared (versions served, by recipient and TLP):", *_totals(board.shared),
             "Newest reports:", *_items(board.reports), "Newest indicators:", *_items(board.indicators),
             "Partners' sightings of our indicators:", *_items(board.sightings)]
    if board.sync:
        lines.append("Sync health:")
        for health in board.sync:
            lines.append(
                f"  {health.name:<20} {health.state:<12} failures {health.consecutive_failures}  last success "
                f"{(health.last_success or 'never')[:19]}  push backlog "
                f"{'-' if health.push_backlog is None else health.push_backlog}"
                f"{'+' if health.push_backlog_more else ''}"
                + (f"  error: {health.last_error[:80]}" if health.last_error else "")
            )
    if board.partial:
        lines.append("Partial: relationships, sightings and reports beyond the newest "
                     "ones checked one by one are not in the received counts.")
    return "\n".join(lines)


@click.command("preview")
@click.argument("draft", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", "collections", multiple=True, required=True,
              help="Collection (id or alias) the draft would be written to (repeatable).")
@click.option("--api-root", default="main", show_default=True, help="API root of the collections.")
@json_option
@click.pass_context
def preview(ctx: click.Context, draft: Path, collections: tuple[str, ...], api_root: str, as_json: bool) -> None:
    """Which partners would see DRAFT once stored, and why the others would not.

    DRAFT is a JSON file holding one STIX object, or a bundle of one object and the marking
    definitions it uses."""
    obj, definitions = _read_draft(draft)
    node = node_of(ctx)
    for ref in collections:  # the operator may be told which one is missing (TAXII's words name none)
        node.find_collection(ref, api_root)
    verdicts = node.share_preview(NODE_ADMIN, obj, list(collections), definitions, api_root)
    summary = summarise(verdicts)
    emit(as_json, {"summary": summary, "partners": [v.as_dict() for v in verdicts]},
         "\n".join([summary + ".", *(f"  {v.describe()}" for v in verdicts)]))


def _read_draft(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The draft and the marking definitions it brings, each refused as `kizuna import` would refuse it: a
    preview of an object that could not be stored would answer a question no one can ask."""
    obj, definitions = _draft_parts(path)
    for each in (*definitions, obj):
        problem = check_object(each)
        if problem is not None:
            raise CliError(f"it could not be stored: {problem}", file=str(path))
    return obj, definitions


def _draft_parts(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        raw = path.read_bytes()
        # Worded as `kizuna import` words it, with the line, rather than as the JSON parser does.
        raw.decode("utf-8")
        data = orjson.loads(raw)
    except UnicodeDecodeError as exc:
        raise CliError(f"not UTF-8 text ({exc.reason})", file=str(path),
                       line=raw.count(b"\n", 0, exc.start) + 1) from None
    except orjson.JSONDecodeError as exc:
        raise CliError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    except OSError as exc:
        raise CliError(f"cannot read: {exc.strerror or exc}", code="io", file=str(path)) from None
    if isinstance(data, dict) and data.get("type") == "bundle":
        found = data.get("objects")
        found = found if isinstance(found, list) else []
        drafts = [o for o in found if isinstance(o, dict) and o.get("type") != "marking-definition"]
        definitions = [o for o in found if isinstance(o, dict) and o.get("type") == "marking-definition"]
        if len(drafts) != 1:
            raise CliError(f"a bundle must hold exactly one object besides marking definitions, not {len(drafts)}",
                           file=str(path))
        return drafts[0], definitions
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise CliError("expected a STIX object (with a type) or a bundle", file=str(path))
    return data, []


def register(group: click.Group) -> None:
    group.add_command(dashboard)
    group.add_command(preview)
