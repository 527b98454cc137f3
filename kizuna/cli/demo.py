"""``kizuna demo``: a node loaded with real public STIX content, served, in one command."""

from __future__ import annotations

import click
import orjson

from kizuna.cli.common import data_dir_of, json_option
from kizuna.cli.node import serve
from kizuna.demo import load_demo


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--no-serve", is_flag=True, help="Set up and print the details, but do not serve.")
@json_option
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, no_serve: bool, as_json: bool) -> None:
    """Start a demo node loaded with ATT&CK for ICS and the OASIS examples."""
    info = load_demo(data_dir_of(ctx))
    url = f"http://{host}:{port}/taxii2/"
    info["taxii_url"] = url
    if as_json:
        click.echo(orjson.dumps(info).decode())
    else:
        click.echo(f"Kizuna demo node in {info['data_dir']}")
        click.echo(f"  TAXII discovery: {url}")
        for c in info["collections"]:
            click.echo(f"  collection {c['id']}  ({c['objects']} objects, alias {c['alias']}): {c['title']}")
        click.echo(f"  token (shown once): {info['token']}")
        first = info["collections"][0]["id"]
        click.echo(
            f"Try: curl -g -H 'Authorization: Bearer {info['token']}' "
            f"-H 'Accept: application/taxii+json;version=2.1' "
            f"'http://{host}:{port}/main/collections/{first}/objects/?match[type]=malware&limit=5'"
        )
    if not no_serve:
        ctx.invoke(serve, host=host, port=port, workers=1)


def register(group: click.Group) -> None:
    group.add_command(demo)
