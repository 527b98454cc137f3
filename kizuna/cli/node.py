"""``kizuna init``, ``api-roots``, ``collections``, ``orgs``, ``status`` and ``serve``: the node itself."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import click

from kizuna.cli.common import (
    CliError,
    Toggle,
    aligned,
    check_port_free,
    emit,
    json_option,
    node_of,
    port_type,
    when_listening,
)
from kizuna.cli.tls import CLIENT_CERT_MODES, parse_rate_limit, serve_tls_options
from kizuna.config import shown_store_url
from kizuna.core.health import metrics_access
from kizuna.core.limits import FAILURES_PER_MINUTE, SCOPES
from kizuna.core.metrics import share_between_processes
from kizuna.core.node import DEFAULT_API_ROOT, Node
from kizuna.stix.timestamps import format_timestamp, now_micros

#: How long ``serve`` keeps an idle keep-alive connection open, in seconds. A client sends its next
#: request on a connection it believes open; if the server closes that connection at the same moment,
#: the request is lost in flight (the client sees the connection closed without an answer). uvicorn's
#: 5 s is shorter than what a busy client waits between two requests; HTTP clients keep idle
#: connections 60-115 s and load balancers 60 s, so the server waits longer than any of them and the
#: client, which knows when it will send, is the one that closes.
KEEP_ALIVE_S = 120

#: More server processes than this is a typo (100000), not a deployment: each opens its own store connections.
MAX_WORKERS = 64


@click.command()
@click.option("--store", "store_url", default=None,
              help="Store URL: sqlite:FILE relative to the data directory (default sqlite:kizuna.db), "
                   "sqlite:///absolute/path.db or postgresql://user@host:port/database.")
@click.option("--org-name", default=None, help="The organisation this node belongs to.")
@click.option("--country", default=None,
              help="ISO 3166-1 alpha-3 code of that organisation's country, e.g. GBR (checked against ISO 3166-1).")
@click.option("--title", default=None, help="Title shown in TAXII discovery.")
@json_option
@click.pass_context
def init(ctx: click.Context, store_url: str | None, org_name: str | None, country: str | None,
         title: str | None, as_json: bool) -> None:
    """Create a node: configuration, store, identity and the 'main' API root."""
    data_dir: Path = ctx.obj["data_dir"]
    if store_url is not None and not store_url.strip():  # as an empty --org-name is: not the default quietly
        raise CliError("--store is empty: give sqlite:FILE, sqlite:///absolute/path.db or postgresql://…",
                       code="usage", exit_code=2)
    node = Node.init(data_dir, store_url, org_name, country, title)
    identity = node.identity()
    store = shown_store_url(node.config.store_url)
    emit(as_json, {"data_dir": str(data_dir), "store": store, "identity": identity},
          f"Initialised a Kizuna node in {data_dir}\n  store:    {store}\n"
          f"  identity: {identity['id']} ({identity['name']})")


@click.group("api-roots")
def api_roots() -> None:
    """TAXII API roots."""


@api_roots.command("create")
@click.argument("name")
@click.option("--title", required=True, help="Title shown to TAXII clients.")
@click.option("--description", default=None, help="Description shown to TAXII clients.")
@click.option("--max-content-length", type=click.IntRange(min=1), default=100 * 1024 * 1024, show_default=True,
              help="Largest request body accepted, in bytes.")
@json_option
@click.pass_context
def api_roots_create(ctx: click.Context, name: str, title: str, description: str | None,
                     max_content_length: int, as_json: bool) -> None:
    """Create an API root served at /NAME/."""
    from kizuna.app import reserved_api_root_names  # here: the other commands need no app

    node = node_of(ctx)
    root = node.create_api_root(name, title, description, max_content_length, reserved_api_root_names(node))
    emit(as_json, {"name": root.name, "title": root.title, "max_content_length": root.max_content_length},
          f"API root /{root.name}/ created")


@api_roots.command("list")
@json_option
@click.pass_context
def api_roots_list(ctx: click.Context, as_json: bool) -> None:
    """List API roots."""
    roots = node_of(ctx).store.list_api_roots()
    emit(as_json, {"api_roots": [{"name": r.name, "title": r.title} for r in roots]},
          "\n".join(f"/{r.name}/  {r.title}" for r in roots))


@click.group()
def collections() -> None:
    """Collections of STIX objects."""


@collections.command("create")
@click.option("--title", required=True, help="Title shown to TAXII clients.")
@click.option("--api-root", default=DEFAULT_API_ROOT, show_default=True, help="API root the collection lives in.")
@click.option("--description", default=None, help="Description shown to TAXII clients.")
@click.option("--alias", default=None, help="A name usable in place of the id in URLs.")
@json_option
@click.pass_context
def collections_create(ctx: click.Context, title: str, api_root: str, description: str | None,
                       alias: str | None, as_json: bool) -> None:
    """Create a collection."""
    c = node_of(ctx).create_collection(title, api_root, description, alias)
    emit(as_json, {"id": c.id, "api_root": c.api_root, "title": c.title, "alias": c.alias},
          f"Collection {c.alias or c.title!r} created in /{c.api_root}/ (id {c.id})")


@collections.command("list")
@json_option
@click.pass_context
def collections_list(ctx: click.Context, as_json: bool) -> None:
    """List collections with their object counts."""
    found = node_of(ctx).collection_status()
    rows = [
        {"id": s.collection.id, "api_root": s.collection.api_root, "title": s.collection.title,
         "alias": s.collection.alias, "objects": s.objects}
        for s in found
    ]
    emit(as_json, {"collections": rows}, _collection_table(rows))


def _collection_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns under a header, as `tokens list` prints them; the counts right-aligned."""
    if not rows:
        return "No collections; create one with `kizuna collections create`."
    counts = [str(r["objects"]) for r in rows]
    width = max(len("VERSIONS"), *map(len, counts))
    lines = [("ID", "API_ROOT", "ALIAS", "VERSIONS", "TITLE")]
    lines += [(r["id"], f"/{r['api_root']}/", r["alias"] or "-", count.rjust(width), r["title"])
              for r, count in zip(rows, counts, strict=True)]
    return "\n".join(aligned(lines))


@click.group()
def orgs() -> None:
    """Organisations (partners and this node's own users)."""


@orgs.command("create")
@click.argument("name")
@click.option("--country", default=None, help="ISO 3166-1 alpha-3 country code, e.g. JPN.")
@click.option("--identity-id", default=None, metavar="identity--UUID",
              help="The identity the organisation already has (a partner node's own, from its `kizuna status`), "
                   "so the objects it produces are named by this organisation here.")
@json_option
@click.pass_context
def orgs_create(ctx: click.Context, name: str, country: str | None, identity_id: str | None,
                as_json: bool) -> None:
    """Create an organisation (a STIX identity)."""
    identity = node_of(ctx).create_organisation(name, country, identity_id)
    emit(as_json, {"id": identity["id"], "name": name, "country": country, "identity": identity},
          f"Organisation {name} is {identity['id']}")


@orgs.command("list")
@json_option
@click.pass_context
def orgs_list(ctx: click.Context, as_json: bool) -> None:
    """List organisations: this node's own, the ones that are its clients (TLP:AMBER received from partner
    nodes reaches those only; `kizuna policy org ORG --client-of …`), their communities and identity ids."""
    node = node_of(ctx)
    found = node.store.list_organisations()
    groups = {g.organisation_id: g for g in node.store.list_organisation_groups()}
    names = {o.id: o.name for o in found}
    rows: list[dict[str, Any]] = []
    lines: list[tuple[str, str, str, str, str]] = []
    for org in found:
        group = groups.get(org.id)
        patrons = [names.get(p, p) for p in (group.client_of if group else ())]
        communities = list(group.communities) if group else []
        here = org.id == node.home_organisation_id
        rows.append({"id": org.id, "name": org.name, "country": org.country, "this_node": here,
                     "client_of": patrons, "communities": communities})
        role = "this node" if here else f"client of {', '.join(patrons)}" if patrons else "-"
        lines.append((org.name, org.country or "---", role, ", ".join(communities) or "-", org.id))
    header = ("NAME", "COUNTRY", "ROLE", "COMMUNITIES", "ID")
    emit(as_json, {"organisations": rows}, "\n".join(aligned([header, *lines])) if lines else "No organisations.")


def _token_states(tokens: list[Any]) -> dict[str, int]:
    """How many tokens are active, expired and revoked (a revoked token counts as revoked only)."""
    now = now_micros()
    revoked = sum(t.revoked_at is not None for t in tokens)
    expired = sum(t.revoked_at is None and t.expires_at is not None and t.expires_at <= now for t in tokens)
    return {"active": len(tokens) - revoked - expired, "expired": expired, "revoked": revoked}


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the node: store, identity, collections and token counts."""
    node = node_of(ctx)
    found = node.collection_status()
    tokens_all = node.store.list_tokens()
    payload: dict[str, Any] = {
        "data_dir": str(node.config.data_dir),
        "store": shown_store_url(node.config.store_url),
        "title": node.title,
        "identity": node.identity().get("id"),
        "api_roots": [r.name for r in node.store.list_api_roots()],
        "collections": [
            {"id": s.collection.id, "api_root": s.collection.api_root, "title": s.collection.title,
             "alias": s.collection.alias, "objects": s.objects,
             "first_added": format_timestamp(s.first_added) if s.first_added is not None else None,
             "last_added": format_timestamp(s.last_added) if s.last_added is not None else None}
            for s in found
        ],
        "tokens": _token_states(tokens_all),
    }
    lines = [f"{payload['title']}", f"  store:    {payload['store']}", f"  identity: {payload['identity']}",
             f"  tokens:   {payload['tokens']['active']} active, {payload['tokens']['expired']} expired, "
             f"{payload['tokens']['revoked']} revoked"]
    lines += [f"  /{c['api_root']}/collections/{c['id']}/  "
              f"{'alias ' + c['alias'] + '  ' if c['alias'] else ''}{c['objects']} versions  {c['title']}"
              for c in payload["collections"]]
    emit(as_json, payload, "\n".join(lines))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, type=port_type, show_default=True, help="TCP port to listen on (1-65535).")
@click.option("--workers", default=1, type=click.IntRange(1, MAX_WORKERS), show_default=True,
              help=f"Server processes (at most {MAX_WORKERS}: each holds its own connections to the store).")
@click.option("--sync/--no-sync", "run_sync", cls=Toggle, default=True, show_default=True,
              help="Run the scheduled partner sync worker (one process, whatever --workers says).")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False),
              help="Serve HTTPS with this server certificate chain (PEM file); needs --tls-key.")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False),
              help="Private key of --tls-cert (PEM file).")
@click.option("--client-ca", default=None, type=click.Path(dir_okay=False),
              help="Verify client certificates issued by this CA (PEM file): mutual TLS. Needs --tls-cert.")
@click.option("--client-cert", default=None, type=click.Choice(sorted(CLIENT_CERT_MODES)),
              help="With --client-ca (default: required): required refuses a connection without a certificate "
                   "in the handshake; optional asks for one and verifies it when sent, so browsers without one "
                   "can use the console while partner nodes use mutual TLS (a token bound to a certificate "
                   "still needs it).")
@click.option("--rate-limit", default=None, metavar="N/s",
              help="Requests a second each token and each client address may make "
                   "(burst: 4 seconds' worth); more get 429 with Retry-After. Default: no limit.")
@click.option("--rate-limit-scope", default="node", show_default=True, type=click.Choice(SCOPES),
              help="node: the limits hold across every server process on this store (a row in the store "
                   "per client); process: each server process counts on its own, in memory.")
@click.option("--auth-failures", default=f"{FAILURES_PER_MINUTE}/min", show_default=True, metavar="N/min",
              help="Failed authentications a client address may make a minute before it gets 429 (0: no limit).")
@click.option("--keep-alive", "keep_alive", default=KEEP_ALIVE_S, type=click.IntRange(min=1), show_default=True,
              metavar="SECONDS",
              help="Close a keep-alive connection after this many idle seconds. Keep it longer than any client "
                   "or load balancer in front keeps an idle connection (they commonly keep them 60-115 s): a "
                   "request sent just as the server closes is lost.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, run_sync: bool, tls_cert: str | None,
          tls_key: str | None, client_ca: str | None, client_cert: str | None, rate_limit: str | None,
          rate_limit_scope: str, auth_failures: str, keep_alive: int) -> None:
    """Serve the TAXII 2.1 API and the web console (HTTPS with --tls-cert/--tls-key)."""
    import uvicorn

    # Here, not at the top: `kizuna status` and the other commands of this module need neither.
    from kizuna.federation.health import announce_worker
    from kizuna.recovery.serving import ServingConflict, serving
    from kizuna.taxii.transport import KizunaHttpProtocol

    if client_cert is not None and client_ca is None:
        raise CliError("--client-cert needs --client-ca (the CA whose certificates are verified)", code="usage")
    client_cert = client_cert or "required"
    tls = serve_tls_options(tls_cert, tls_key, client_ca, client_cert)
    limits = parse_rate_limit(rate_limit, auth_failures, rate_limit_scope)
    node = node_of(ctx)
    metrics_access(node.config)  # the app reads [metrics] as it starts: a bad value fails here, before the banner
    node.close()  # fail here, with a clear message, if the node cannot open
    check_port_free(host, port)  # and here if the port is taken, before the banner says otherwise
    os.environ["KIZUNA_DATA"] = str(ctx.obj["data_dir"])
    os.environ["KIZUNA_TLS"] = "1" if tls else ""  # the app then sends HSTS
    os.environ["KIZUNA_LIMITS"] = limits.settings()
    share_between_processes()  # /metrics sums the counts of every process this serve starts
    announce_worker(run_sync)  # /readyz then expects a live sync worker when the node has partners
    # Held until the server stops, so that `kizuna restore` refuses to swap the store beneath it.
    held = contextlib.ExitStack()
    try:
        held.enter_context(serving(Path(ctx.obj["data_dir"])))
    except ServingConflict as exc:
        raise CliError(str(exc), code="serving") from None
    with held:
        scheme = "https" if tls else "http"
        mutual = f" (client certificates {client_cert})" if client_ca else ""
        banner = (f"Kizuna TAXII 2.1 server on {scheme}://{host}:{port}/taxii2/{mutual}, web console on "
                  f"{scheme}://{host}:{port}/console/")
        announce = ctx.obj.get("announce_when_listening", lambda: None)

        def listening() -> None:
            announce()
            click.echo(banner, err=True)

        gave_up = when_listening(host, port, listening)
        # One sync worker beside the web processes, restarted if it dies; a lease in the store keeps it
        # to one per node.
        from kizuna.federation.supervisor import WorkerSupervisor

        worker = WorkerSupervisor(Path(ctx.obj["data_dir"])).start() if run_sync else None
        # uvicorn handles SIGTERM, shuts down, then raises it again under the handler it found: SIG_DFL
        # would kill this process there, skipping the `finally` below and the exit handlers (the metrics
        # directory was left in /tmp on every `kill`). Ctrl-C unwinds as KeyboardInterrupt; SIGTERM now
        # unwinds as a clean exit.
        previous_term = signal.signal(signal.SIGTERM, _exit_on_terminate)
        try:
            uvicorn.run(
                "kizuna.app:app_from_environment", factory=True, host=host, port=port,
                workers=workers, access_log=False, log_level="warning", http=KizunaHttpProtocol, **tls,
                # A stop never waits on a slow client for long: the sync worker must still be stopped after,
                # so it gives its leases back (a kill of this process would leave them to expire).
                timeout_graceful_shutdown=5, timeout_keep_alive=keep_alive,
            )
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            gave_up.set()
            if worker is not None:
                worker.stop()


def _exit_on_terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (`kill PID`, a service manager's stop) ends `kizuna serve` as asked: exit status 0."""
    raise SystemExit(0)


def register(group: click.Group) -> None:
    for command in (init, api_roots, collections, orgs, status, serve):
        group.add_command(command)
