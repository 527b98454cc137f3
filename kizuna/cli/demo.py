"""``kizuna demo``: a node loaded with real public STIX content, served, in one command."""

from __future__ import annotations

import sys
from typing import Any

import click

from kizuna.cli.common import CliError, check_port_free, data_dir_of, emit, json_option, port_type
from kizuna.cli.node import serve
from kizuna.core.node import Node
from kizuna.demo import NotADemoNode, load_demo


def _games_day(node: Node) -> dict[str, Any]:
    """The Games day (kizuna/ops/games.py), with the shift report's Japanese from the console's catalog."""
    from kizuna.ops.arrivals import alerts_of
    from kizuna.ops.games import load_games
    from kizuna.ops.reading import latest_objects
    from kizuna.web.i18n import translations

    operation = load_games(node, translations("ja").gettext)
    incidents = node.find_collection(operation.collections["incidents"])
    return {"name": operation.name, "slug": operation.slug, "collections": list(operation.collections.values()),
            "alerts": len(alerts_of(node, operation)),
            "incidents": sum(1 for _ in latest_objects(node, incidents, ("incident",))),
            "console_path": f"/console/operations/{operation.slug}"}


def _collection_line(c: dict[str, Any]) -> str:
    split = ""
    if c.get("from_source") is not None:
        # A later run reports the split of the run that loaded the collection: its count may have changed since.
        earlier = "" if c.get("loaded_now", True) else " now; an earlier run loaded"
        split = f"{earlier}: {c['from_source']} of the {c['read']} source objects"
        if c.get("added_by_node"):
            # TLP 1.0 markings in the source become the OASIS TLP 2.0 objects the node added itself.
            split += f" + {c['added_by_node']} OASIS TLP 2.0 objects added by the node"
    return f"  collection {c['id']}  alias {c['alias']}  {c['objects']} objects{split}  ({c['title']})"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8000, type=port_type, show_default=True, help="TCP port to serve on (1-65535).")
@click.option("--no-serve", is_flag=True, help="Set up and print the details, but do not serve.")
@click.option("--force", is_flag=True,
              help="Load the demo content even into a node (or non-empty directory) that is not a demo node.")
@click.option("--games", is_flag=True,
              help="Play a Games day instead: three nodes (host nation, visiting nation, organising-committee "
                   "SOC) in subdirectories of --data, sharing over TAXII, served on loopback until Ctrl-C. "
                   "With --no-serve, the day is played inside one demo node.")
@click.option("--visitor-port", default=0, type=click.IntRange(0, 65535), show_default=True,
              help="With --games: the visiting nation's node port (0: a free port).")
@click.option("--soc-port", default=0, type=click.IntRange(0, 65535), show_default=True,
              help="With --games: the organising-committee SOC node's port (0: a free port).")
@json_option
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, no_serve: bool, force: bool, games: bool, visitor_port: int,
         soc_port: int, as_json: bool) -> None:
    """Start a demo node loaded with ATT&CK for ICS and the OASIS examples (--games: a Games day on three nodes)."""
    if games and not no_serve:
        from kizuna.cli.games_nodes import run_games_nodes

        ports = {"host": port, "visitor": visitor_port, "soc": soc_port}
        for wanted in ports.values():
            if wanted:
                check_port_free("127.0.0.1", wanted)
        run_games_nodes(data_dir_of(ctx), ports, as_json, sys.stdout)
        return
    if not no_serve:
        check_port_free(host, port)  # before anything is created: no node, no token on a busy port
    try:
        info = load_demo(data_dir_of(ctx), force=force, scenario=_games_day if games else None)
    except NotADemoNode as exc:
        raise CliError(str(exc), code="not-demo") from None
    url = f"http://{host}:{port}/taxii2/"
    info["taxii_url"] = url
    info["console_url"] = f"http://{host}:{port}/console/"
    first = info["collections"][0]["id"]
    lines = [f"Kizuna demo node in {info['data_dir']}", f"  TAXII discovery: {url}",
             f"  Web console: {info['console_url']} (sign in with the token below)"]
    lines += [_collection_line(c) for c in info["collections"]]
    if "scenario" in info:
        played = info["scenario"]
        info["scenario"]["console_url"] = f"http://{host}:{port}{played['console_path']}"
        lines.append(f"  operation {played['name']!r} ({played['slug']}): {played['alerts']} alerts, "
                     f"{played['incidents']} incidents; open {played['console_url']}")
    lines.append(f"  token (shown once): {info['token']}")
    if no_serve:  # the addresses above are where `serve` will answer, not where anything answers now
        lines.append(f"Not served: start it with `kizuna --data {info['data_dir']} serve --host {host} --port {port}`, "
                     "then the addresses above answer")
    lines.append(f"Try: curl -g -H 'Authorization: Bearer {info['token']}' "
                 f"-H 'Accept: application/taxii+json;version=2.1' "
                 f"'http://{host}:{port}/main/collections/{first}/objects/?match[type]=malware&limit=5'")
    if no_serve:
        emit(as_json, info, "\n".join(lines))
        return
    # Printed once the port listens, so that the curl line answers when pasted at once.
    ctx.obj["announce_when_listening"] = lambda: emit(as_json, info, "\n".join(lines))
    ctx.invoke(serve, host=host, port=port, workers=1)


def register(group: click.Group) -> None:
    group.add_command(demo)
