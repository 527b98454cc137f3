"""``kizuna objects``: list, show, version and delete a collection's objects as a chosen principal.

Thin: `kizuna.core.browse` reads through the same visibility check, paging and audit as TAXII.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import orjson

from kizuna.cli.common import CliError, Moment, aligned, emit, json_option, node_of, token_id_type
from kizuna.core import browse
from kizuna.core.node import Node
from kizuna.core.query import Page
from kizuna.stix.timestamps import format_timestamp
from kizuna.store.base import Collection

_NAME_WIDTH = 60


def _principal_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--collection", "-c", required=True, help="Collection id or alias."),
        click.option("--api-root", default=None, help="API root of the collection (default: any)."),
        click.option("--as-token-id", default=None, metavar="ID", type=token_id_type,
                     help="Act as this token, with its rights (see `kizuna tokens list`)."),
        click.option("--as-org", default=None, metavar="NAME",
                     help="Act as this organisation, with access to every collection; markings and its "
                          "agreements still decide what it sees, and so what it may delete. "
                          "Default: the node's own organisation."),
    )):
        command = option(command)
    return command


def _paging_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--spec-version", "spec_versions", multiple=True,
                     help="Only objects of this STIX version, e.g. 2.1 (repeatable)."),
        click.option("--added-after", type=Moment(), default=None, metavar="TIME",
                     help="Only versions added after this moment (exclusive): a timestamp or an ISO date."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many per page."),
        click.option("--next", "next_", default=None, metavar="CURSOR",
                     help="Continue with the page this cursor names (printed when there is more)."),
    )):
        command = option(command)
    return command


def _context(ctx: click.Context, collection: str, api_root: str | None, as_token_id: str | None,
             as_org: str | None) -> tuple[Node, browse.Acting, Collection]:
    node = node_of(ctx)
    acting = browse.acting_as(node, as_token_id, as_org)
    return node, acting, browse.find_collection(node, acting, collection, api_root)


def _envelope(page: Page) -> dict[str, Any]:
    """The TAXII envelope, each object byte for byte as the principal receives it."""
    payload: dict[str, Any] = {"more": page.more}
    if page.next is not None:
        payload["next"] = page.next
    if page.items:
        payload["objects"] = [orjson.Fragment(body) for _, body in page.items]
    return payload


def _short(text: str | None) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= _NAME_WIDTH else text[: _NAME_WIDTH - 1] + "…"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    header = ("ADDED", "TYPE", "TLP", "PRODUCER", "NAME", "ID")
    lines = [header] + [
        (r["added"][:19] + "Z", r["type"], r["tlp"] or "-", _short(r["producer"]), _short(r["name"]), r["id"])
        for r in rows
    ]
    return aligned(lines)


def _more_hint(page: Page) -> list[str]:
    return [f"More: repeat the command with --next {page.next}"] if page.more and page.next else []


@click.group()
def objects() -> None:
    """Browse and delete a collection's objects as a chosen principal (same rules as TAXII)."""


@objects.command("list")
@_principal_options
@click.option("--type", "types", multiple=True, help="Only this STIX type (repeatable).")
@click.option("--id", "ids", multiple=True, help="Only this STIX id (repeatable).")
@click.option("--version", default=None, help="first, last (default), all, or a version timestamp.")
@_paging_options
@json_option
@click.pass_context
def objects_list(ctx: click.Context, collection: str, api_root: str | None, as_token_id: str | None,
                 as_org: str | None, types: tuple[str, ...], ids: tuple[str, ...], version: str | None,
                 spec_versions: tuple[str, ...], added_after: str | None, limit: int | None,
                 next_: str | None, as_json: bool) -> None:
    """List objects: date added, type, TLP, producer, name and id (--json: the TAXII envelope)."""
    if any(not value.strip() for value in (*types, *ids)):
        raise CliError("--type and --id take a STIX type or id, not an empty value", code="usage", exit_code=2)
    node, acting, found = _context(ctx, collection, api_root, as_token_id, as_org)
    query = browse.Query(ids, types, version, spec_versions, added_after, limit, next_)
    page = browse.list_objects(node, acting, found, query)
    if as_json:
        emit(True, _envelope(page), "")
        return
    rows = browse.summarise(node, acting, found, page)
    lines = _table(rows) if rows else [f"No objects in {found.alias or found.id} for {acting.described}."]
    emit(False, None, "\n".join(lines + _more_hint(page)))


@objects.command("show")
@click.argument("object_id")
@_principal_options
@click.option("--version", default=None, help="first, last (default), all, or a version timestamp.")
@_paging_options
@json_option
@click.pass_context
def objects_show(ctx: click.Context, object_id: str, collection: str, api_root: str | None,
                 as_token_id: str | None, as_org: str | None, version: str | None,
                 spec_versions: tuple[str, ...], added_after: str | None, limit: int | None,
                 next_: str | None, as_json: bool) -> None:
    """Show one object as the principal receives it (--json: the TAXII envelope)."""
    node, acting, found = _context(ctx, collection, api_root, as_token_id, as_org)
    query = browse.Query((), (), version, spec_versions, added_after, limit, next_)
    page = browse.show_object(node, acting, found, object_id, query)
    if not page.items and not page.more:
        # Possible without the object being hidden (its latest version is hidden, an older one is
        # not); nothing to show is a failure, as for an absent object, not an empty success.
        raise CliError(f"no version of {object_id} matches these filters for {acting.described}",
                       code="not-found")
    if as_json:
        emit(True, _envelope(page), "")
        return
    lines = []
    for summary, (_, body) in zip(browse.summarise(node, acting, found, page), page.items, strict=True):
        lines += [
            f"{summary['type']}  {summary['name'] or '-'}",
            f"  producer: {summary['producer'] or '-'}",
            f"  TLP:      {summary['tlp'] or '-'}",
            f"  version:  {summary['version']}",
            f"  added:    {summary['added']}",
            orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(),
        ]
    emit(False, None, "\n".join(lines + _more_hint(page)))


@objects.command("versions")
@click.argument("object_id")
@_principal_options
@_paging_options
@json_option
@click.pass_context
def objects_versions(ctx: click.Context, object_id: str, collection: str, api_root: str | None,
                     as_token_id: str | None, as_org: str | None, spec_versions: tuple[str, ...],
                     added_after: str | None, limit: int | None, next_: str | None, as_json: bool) -> None:
    """List the versions of one object the principal sees, oldest first."""
    node, acting, found = _context(ctx, collection, api_root, as_token_id, as_org)
    query = browse.Query((), (), None, spec_versions, added_after, limit, next_)
    page = browse.object_versions(node, acting, found, object_id, query)
    versions = [format_timestamp(row.version) for row, _ in page.items]
    payload: dict[str, Any] = {"more": page.more, **({"next": page.next} if page.next else {})}
    if versions:
        payload["versions"] = versions
    lines = ["VERSION                      ADDED"] + [
        f"{format_timestamp(row.version)}  {format_timestamp(row.date_added)}" for row, _ in page.items
    ]
    emit(as_json, payload, "\n".join(lines + _more_hint(page)))


@objects.command("delete")
@click.argument("object_id")
@_principal_options
@click.option("--version", default=None,
              help="Delete only these versions: first, last or a version timestamp (default: all).")
@click.option("--spec-version", "spec_versions", multiple=True,
              help="Only versions of this STIX version, e.g. 2.1 (repeatable).")
@json_option
@click.pass_context
def objects_delete(ctx: click.Context, object_id: str, collection: str, api_root: str | None,
                   as_token_id: str | None, as_org: str | None, version: str | None,
                   spec_versions: tuple[str, ...], as_json: bool) -> None:
    """Delete an object like TAXII DELETE: audited, and recalled from partners that received it."""
    node, acting, found = _context(ctx, collection, api_root, as_token_id, as_org)
    query = browse.Query((), (), version, spec_versions)
    deleted = browse.delete_object(node, acting, found, object_id, query)
    emit(as_json, {"id": object_id, "collection": found.id, "deleted": deleted},
         f"Deleted {deleted} version{'s' if deleted != 1 else ''} of {object_id} "
         f"from {found.alias or found.id}")


def register(group: click.Group) -> None:
    group.add_command(objects)
