"""``kizuna feeds``: named feeds for firewalls, resolvers and IDS sensors, served at /feeds/<name>.<ext>."""

from __future__ import annotations

from typing import Any

import click

from kizuna.cli.common import aligned, emit, json_option, node_of, tlp_level
from kizuna.core.feeds import (
    FEED_EXTENSIONS,
    FeedDefinition,
    collection_of,
    create_feed,
    get_feed,
    list_feeds,
    remove_feed,
)
from kizuna.core.node import Node
from kizuna.formats.blocklists import BLOCKLIST_KINDS


@click.group()
def feeds() -> None:
    """Named feeds: each is fetched by devices as GET /feeds/<name>.<ext>, in the caller's own view."""


def _describe(node: Node, feed: FeedDefinition) -> dict[str, Any]:
    collection = collection_of(node, feed)
    shown = (collection.alias or collection.title) if collection is not None else f"{feed.collection_id} (gone)"
    return {**feed.as_json(), "collection_name": shown}


def _limits(row: dict[str, Any]) -> str:
    limits = []
    if row["type"]:
        limits.append(f"type {row['type']}")
    if row["tlp_ceiling"]:
        limits.append(f"up to TLP:{row['tlp_ceiling'].upper()}")
    if row["min_confidence"] is not None:
        limits.append(f"confidence >= {row['min_confidence']}")
    if row["include_warninglisted"]:
        limits.append("warninglisted included")
    if row["rpz_origin"]:
        limits.append(f"origin {row['rpz_origin']}")
    return ", ".join(limits) or "-"


@feeds.command("create")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(sorted(FEED_EXTENSIONS)), required=True,
              help="txt (a plain blocklist), rpz (a DNS response-policy zone), suricata (.rules), zeek "
                   "(Zeek Intel), csv.")
@click.option("--collection", "-c", required=True, help="Collection id or alias whose indicators make the feed.")
@click.option("--api-root", default=None, help="API root of the collection (default: search every root).")
@click.option("--type", "kind", type=click.Choice(sorted(BLOCKLIST_KINDS)), default=None,
              help="txt: which IOCs the list holds (default ip).")
@click.option("--tlp-ceiling", "--tlp-max", "tlp_ceiling", type=tlp_level, default=None,
              help="Leave out indicators marked above this TLP level, whatever the caller may see (--tlp-max, as for "
                   "export).")
@click.option("--min-confidence", type=click.IntRange(0, 100), default=None,
              help="Leave out indicators below this confidence (or without one).")
@click.option("--include-warninglisted", is_flag=True,
              help="Include indicators flagged as on a MISP warninglist (left out by default).")
@click.option("--rpz-origin", default=None, metavar="ZONE",
              help="rpz: the zone's origin, as the resolver's response-policy statement names it.")
@json_option
@click.pass_context
def feeds_create(ctx: click.Context, name: str, fmt: str, collection: str, api_root: str | None,
                 kind: str | None, tlp_ceiling: str | None, min_confidence: int | None,
                 include_warninglisted: bool, rpz_origin: str | None, as_json: bool) -> None:
    """Define a feed NAME over a collection; devices fetch it with their own token."""
    node = node_of(ctx)
    feed = create_feed(node, FeedDefinition(name, fmt, api_root or "", "", tlp_ceiling, min_confidence, kind,
                                            include_warninglisted, rpz_origin), collection)
    row = _describe(node, feed)
    emit(as_json, row, f"Feed {feed.name} created over {row['collection_name']}: GET {feed.path} "
                       "with a token that may read the collection (each token gets its own view)")


@feeds.command("list")
@json_option
@click.pass_context
def feeds_list(ctx: click.Context, as_json: bool) -> None:
    """List the feeds: name, path, collection and limits."""
    node = node_of(ctx)
    rows = [_describe(node, feed) for feed in list_feeds(node)]
    if not rows:
        emit(as_json, {"feeds": []}, "No feeds; define one with `kizuna feeds create`.")
        return
    table = [("NAME", "PATH", "COLLECTION", "LIMITS")] + [
        (r["name"], r["path"], r["collection_name"], _limits(r)) for r in rows]
    text = "\n".join(aligned(table))
    emit(as_json, {"feeds": rows}, text)


@feeds.command("show")
@click.argument("name")
@json_option
@click.pass_context
def feeds_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one feed's definition."""
    node = node_of(ctx)
    row = _describe(node, get_feed(node, name))
    text = "\n".join([f"name        {row['name']}", f"path        {row['path']}", f"format      {row['format']}",
                      f"collection  {row['collection_name']} ({row['collection']}, API root {row['api_root']})",
                      f"limits      {_limits(row)}"])
    emit(as_json, row, text)


@feeds.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def feeds_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove a feed; devices fetching it get 404 from then on."""
    remove_feed(node_of(ctx), name)
    emit(as_json, {"name": name, "removed": True}, f"Feed {name} removed")


def register(cli: click.Group) -> None:
    cli.add_command(feeds)
