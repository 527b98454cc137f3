"""The ``kizuna`` command: node administration and the server, every step scriptable.

Each command is a thin call into :class:`kizuna.core.node.Node`; ``--json`` prints one
JSON object for scripts, and the data directory comes from ``--data`` or ``KIZUNA_DATA``.
"""

from __future__ import annotations

import os
import sys
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from kizuna.config import ConfigError, resolve_data_dir
from kizuna.core.errors import KizunaError
from kizuna.core.node import DEFAULT_API_ROOT, Node
from kizuna.stix.timestamps import format_timestamp
from kizuna.store.base import StoreError


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(orjson.dumps(payload).decode())
    else:
        click.echo(text)


class _Context:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._node: Node | None = None

    def node(self) -> Node:
        if self._node is None:
            try:
                self._node = Node.open(self.data_dir)
            except (ConfigError, StoreError, KizunaError) as exc:
                raise click.ClickException(str(exc)) from None
        return self._node


def _fail_cleanly(fn: Any) -> Any:
    """Turn the node's own errors into a one-line CLI message with a non-zero exit."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (KizunaError, StoreError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
@click.option(
    "--data", "data", type=click.Path(file_okay=False), default=None,
    help="Node data directory (default: $KIZUNA_DATA or ./kizuna-data).",
)
@click.version_option(package_name="kizuna")
@click.pass_context
def cli(ctx: click.Context, data: str | None) -> None:
    """Kizuna: share STIX 2.1 over TAXII 2.1 with partner organisations."""
    data_dir = resolve_data_dir(data)
    ctx.obj = {"data_dir": data_dir, "context": _Context(data_dir)}


def _ctx(ctx: click.Context) -> _Context:
    context: _Context = ctx.obj["context"]
    return context


@cli.command()
@click.option("--store", "store_url", default=None, help="sqlite:///abs/path.db (default) or postgresql://…")
@click.option("--org-name", default=None, help="The organisation this node belongs to.")
@click.option("--country", default=None, help="ISO 3166-1 alpha-3 country of that organisation, e.g. GBR.")
@click.option("--title", default=None, help="Title shown in TAXII discovery.")
@json_option
@click.pass_context
@_fail_cleanly
def init(ctx: click.Context, store_url: str | None, org_name: str | None, country: str | None,
         title: str | None, as_json: bool) -> None:
    """Create a node: configuration, store, identity and the 'main' API root."""
    data_dir: Path = ctx.obj["data_dir"]
    node = Node.init(data_dir, store_url, org_name, country, title)
    identity = node.identity()
    _emit(as_json, {"data_dir": str(data_dir), "store": node.config.store_url, "identity": identity},
          f"Initialised a Kizuna node in {data_dir}\n  store:    {node.config.store_url}\n"
          f"  identity: {identity['id']} ({identity['name']})")


@cli.group("api-roots")
def api_roots() -> None:
    """TAXII API roots."""


@api_roots.command("create")
@click.argument("name")
@click.option("--title", required=True)
@click.option("--description", default=None)
@click.option("--max-content-length", type=int, default=100 * 1024 * 1024, show_default=True)
@json_option
@click.pass_context
@_fail_cleanly
def api_roots_create(ctx: click.Context, name: str, title: str, description: str | None,
                     max_content_length: int, as_json: bool) -> None:
    """Create an API root served at /NAME/."""
    root = _ctx(ctx).node().create_api_root(name, title, description, max_content_length)
    _emit(as_json, {"name": root.name, "title": root.title, "max_content_length": root.max_content_length},
          f"API root /{root.name}/ created")


@api_roots.command("list")
@json_option
@click.pass_context
@_fail_cleanly
def api_roots_list(ctx: click.Context, as_json: bool) -> None:
    """List API roots."""
    roots = _ctx(ctx).node().store.list_api_roots()
    _emit(as_json, {"api_roots": [{"name": r.name, "title": r.title} for r in roots]},
          "\n".join(f"/{r.name}/  {r.title}" for r in roots))


@cli.group()
def collections() -> None:
    """Collections of STIX objects."""


@collections.command("create")
@click.option("--title", required=True)
@click.option("--api-root", default=DEFAULT_API_ROOT, show_default=True)
@click.option("--description", default=None)
@click.option("--alias", default=None, help="A name usable in place of the id in URLs.")
@json_option
@click.pass_context
@_fail_cleanly
def collections_create(ctx: click.Context, title: str, api_root: str, description: str | None,
                       alias: str | None, as_json: bool) -> None:
    """Create a collection."""
    c = _ctx(ctx).node().create_collection(title, api_root, description, alias)
    _emit(as_json, {"id": c.id, "api_root": c.api_root, "title": c.title, "alias": c.alias},
          f"Collection {c.id} created in /{c.api_root}/")


@collections.command("list")
@json_option
@click.pass_context
@_fail_cleanly
def collections_list(ctx: click.Context, as_json: bool) -> None:
    """List collections with their object counts."""
    found = _ctx(ctx).node().collection_status()
    rows = [
        {"id": s.collection.id, "api_root": s.collection.api_root, "title": s.collection.title,
         "alias": s.collection.alias, "objects": s.objects}
        for s in found
    ]
    _emit(as_json, {"collections": rows},
          "\n".join(f"{r['id']}  /{r['api_root']}/  {r['objects']:>9} versions  {r['title']}" for r in rows))


@cli.group()
def orgs() -> None:
    """Organisations (partners and this node's own users)."""


@orgs.command("create")
@click.argument("name")
@click.option("--country", default=None, help="ISO 3166-1 alpha-3, e.g. JPN.")
@json_option
@click.pass_context
@_fail_cleanly
def orgs_create(ctx: click.Context, name: str, country: str | None, as_json: bool) -> None:
    """Create an organisation (a STIX identity)."""
    identity = _ctx(ctx).node().create_organisation(name, country)
    _emit(as_json, {"id": identity["id"], "name": name, "country": country, "identity": identity},
          f"Organisation {name} is {identity['id']}")


@orgs.command("list")
@json_option
@click.pass_context
@_fail_cleanly
def orgs_list(ctx: click.Context, as_json: bool) -> None:
    """List organisations."""
    found = _ctx(ctx).node().store.list_organisations()
    _emit(as_json, {"organisations": [{"id": o.id, "name": o.name, "country": o.country} for o in found]},
          "\n".join(f"{o.id}  {o.country or '---'}  {o.name}" for o in found))


@cli.group()
def tokens() -> None:
    """API tokens (stored hashed; the secret is shown once)."""


@tokens.command("create")
@click.option("--org", "org", required=True, help="Organisation name or identity id.")
@click.option("--read", "read", multiple=True, help="Collection id or alias it may read (repeatable).")
@click.option("--write", "write", multiple=True, help="Collection id or alias it may write (repeatable).")
@click.option("--label", default=None)
@json_option
@click.pass_context
@_fail_cleanly
def tokens_create(ctx: click.Context, org: str, read: tuple[str, ...], write: tuple[str, ...],
                  label: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once and never stored."""
    token_id, secret = _ctx(ctx).node().create_token(org, read, write, label)
    _emit(as_json, {"id": token_id, "token": secret},
          f"Token {token_id} created. Store the secret now; it is not shown again:\n{secret}")


@tokens.command("list")
@json_option
@click.pass_context
@_fail_cleanly
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = _ctx(ctx).node().store.list_tokens()
    rows = [
        {"id": t.id, "organisation": t.organisation_id, "label": t.label,
         "created": format_timestamp(t.created_at),
         "revoked": format_timestamp(t.revoked_at) if t.revoked_at else None,
         "grants": [{"collection_pk": g.collection_pk, "read": g.can_read, "write": g.can_write}
                    for g in t.grants]}
        for t in found
    ]
    _emit(as_json, {"tokens": rows},
          "\n".join(f"{r['id']}  {r['organisation']}  {'revoked' if r['revoked'] else 'active'}" for r in rows))


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
@_fail_cleanly
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke a token at once, for every server process."""
    _ctx(ctx).node().revoke_token(token_id)
    _emit(as_json, {"id": token_id, "revoked": True}, f"Token {token_id} revoked")


def _import_file(node: Node, path: Path, collection_ref: str, api_root: str | None) -> dict[str, Any]:
    from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

    target = node.find_collection(collection_ref, api_root)
    lines = array("q")  # the line of every object, 8 bytes each, to name failures by line

    def objects(stream: Any) -> Iterator[Any]:
        for line, obj in iter_bundle_objects(stream, str(path)):
            lines.append(line)
            yield obj

    try:
        with path.open("rb") as stream:
            report = node.import_objects(target, objects(stream))
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror or exc}") from None
    except BundleSyntaxError as exc:
        raise click.ClickException(f"{exc} (objects before this point were imported)") from None
    failures = [
        {"line": lines[pos], "id": f["id"], "message": f["message"]}
        for pos, f in zip(report.failure_positions, report.failures, strict=True)
    ]
    return {"collection": target.id, "total": report.total, "stored": report.success_count,
            "failed": len(failures), "failures": failures}


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None)
@json_option
@click.pass_context
@_fail_cleanly
def import_(ctx: click.Context, file: Path, collection: str, api_root: str | None, as_json: bool) -> None:
    """Import a STIX 2.1 bundle file (streamed; any size)."""
    result = _import_file(_ctx(ctx).node(), file, collection, api_root)
    text = [f"{file}: {result['stored']} of {result['total']} objects stored in {result['collection']}"]
    text += [f"{file}:{f['line']}: {f['id'] or 'object'}: {f['message']}" for f in result["failures"]]
    _emit(as_json, result, "\n".join(text))
    if result["failed"]:
        ctx.exit(1)


@cli.command()
@click.option("--collection", required=True, help="Collection id or alias.")
@click.option("--api-root", default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the bundle here instead of standard output.")
@click.pass_context
@_fail_cleanly
def export(ctx: click.Context, collection: str, api_root: str | None, output: Path | None) -> None:
    """Export every version of every object in a collection as a STIX bundle."""
    node = _ctx(ctx).node()
    target = node.find_collection(collection, api_root)
    stream = output.open("wb") if output else sys.stdout.buffer
    try:
        stream.write(b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":[')
        for index, body in enumerate(node.export_objects(target)):
            stream.write(b",\n" if index else b"\n")
            stream.write(body)
        stream.write(b"\n]}\n")
    finally:
        if output:
            stream.close()
        else:
            stream.flush()


@cli.command()
@json_option
@click.pass_context
@_fail_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the node: store, identity, collections and token counts."""
    node = _ctx(ctx).node()
    found = node.collection_status()
    tokens_all = node.store.list_tokens()
    payload: dict[str, Any] = {
        "data_dir": str(node.config.data_dir),
        "store": node.config.store_url,
        "title": node.title,
        "identity": node.identity().get("id"),
        "api_roots": [r.name for r in node.store.list_api_roots()],
        "collections": [
            {"id": s.collection.id, "api_root": s.collection.api_root, "title": s.collection.title,
             "objects": s.objects,
             "first_added": format_timestamp(s.first_added) if s.first_added is not None else None,
             "last_added": format_timestamp(s.last_added) if s.last_added is not None else None}
            for s in found
        ],
        "tokens": {"active": sum(t.revoked_at is None for t in tokens_all),
                   "revoked": sum(t.revoked_at is not None for t in tokens_all)},
    }
    lines = [f"{payload['title']}", f"  store:    {payload['store']}", f"  identity: {payload['identity']}",
             f"  tokens:   {payload['tokens']['active']} active, {payload['tokens']['revoked']} revoked"]
    lines += [f"  /{c['api_root']}/collections/{c['id']}/  {c['objects']} versions  {c['title']}"
              for c in payload["collections"]]
    _emit(as_json, payload, "\n".join(lines))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--workers", default=1, type=int, show_default=True, help="Server processes.")
@click.option("--sync/--no-sync", "run_sync", default=True, show_default=True,
              help="Run the scheduled partner sync worker (one process, whatever --workers says).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, run_sync: bool) -> None:
    """Serve the TAXII 2.1 API."""
    import subprocess

    import uvicorn

    _ctx(ctx).node().close()  # fail here, with a clear message, if the node cannot open
    os.environ["KIZUNA_DATA"] = str(ctx.obj["data_dir"])
    click.echo(f"Kizuna TAXII 2.1 server on http://{host}:{port}/taxii2/", err=True)
    # One sync worker beside the web processes; a lease in the store keeps it to one per node.
    worker = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(ctx.obj["data_dir"]), "sync", "--loop",
         "--parent-pid", str(os.getpid())]
    ) if run_sync else None
    try:
        uvicorn.run(
            "kizuna.taxii.app:app_from_environment", factory=True, host=host, port=port,
            workers=workers, access_log=False, log_level="warning",
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)


def _register_commands() -> None:
    # Imported here: these modules build on the helpers above.
    from kizuna import cli_policy
    from kizuna.demo import demo
    from kizuna.detect.cli import match_command
    from kizuna.federation import cli as federation_cli

    cli.add_command(demo)
    cli.add_command(match_command)
    cli_policy.register(cli)
    federation_cli.register(cli)


_register_commands()


def main() -> None:
    cli(prog_name="kizuna")
