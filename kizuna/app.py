"""The node's ASGI application, assembled from the routes of each room.

The web console (`kizuna.web`, under /console/), TAXII 2.1 (`kizuna.taxii`), the feeds for firewalls
and resolvers (`kizuna.formats.feed_routes`, under /feeds/), the detection API (`kizuna.detect.api`),
hash matching (`kizuna.hashes.api`) and the Kizuna-to-Kizuna federation extensions
(`kizuna.federation.api`) each export their routes;
this module is the only place that knows all of them, so no room imports another's HTTP layer. For
the same reason it assembles the health endpoints (readiness checks and store-read metrics come
from core and federation), wraps every route in the request-counting middleware, and serves the
OpenAPI document that names them all (`kizuna.taxii.openapi`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from kizuna.config import resolve_data_dir
from kizuna.core.bulk_import import set_aside_long_lived
from kizuna.core.dashboard import warm_counts
from kizuna.core.health import ReadinessCheck, StoreCollector, store_checks
from kizuna.core.limits import RequestLimits
from kizuna.core.node import Node
from kizuna.detect.api import routes as detect_routes
from kizuna.federation.api import routes as federation_routes
from kizuna.federation.health import SyncCollector, worker_check
from kizuna.formats.feed_routes import feed_routes
from kizuna.formats.upload import import_upload
from kizuna.hashes.api import HashMatchService
from kizuna.hashes.api import routes as hash_routes
from kizuna.hashes.opinions import opinion_of
from kizuna.hashes.signals import DEFAULT_THRESHOLD
from kizuna.ops.arrivals import watch_arrivals
from kizuna.ops.board import operation_board, visible_operations
from kizuna.store.rate_buckets import shared_bucket_maker
from kizuna.taxii.health import RequestMetrics, health_routes
from kizuna.taxii.http import AnswerFailures, RefuseNul, http_error, server_error
from kizuna.taxii.openapi import openapi_routes
from kizuna.taxii.routes import routes as taxii_routes
from kizuna.taxii.transport import TransportSecurity
from kizuna.web.hashes import HashesSource
from kizuna.web.operations import OperationsSource
from kizuna.web.render import warm_console
from kizuna.web.routes import web_routes

log = logging.getLogger("kizuna")


def _routes(node: Node, hashes: HashMatchService) -> list[BaseRoute]:
    """Every route of the app, in the order they are tried."""

    def readiness() -> list[ReadinessCheck]:
        return [*store_checks(node), worker_check(node)]

    health = health_routes(node, readiness, [StoreCollector(node), SyncCollector(node)])
    # The console and the feeds first: the TAXII route /{api_root}/ would otherwise catch them.
    return [*web_routes(node), *health, *openapi_routes(), *feed_routes(node), *taxii_routes(node),
            *detect_routes(node), *hash_routes(hashes), *federation_routes(node)]


def reserved_api_root_names(node: Node) -> frozenset[str]:
    """The first path segments the app serves itself (taxii2, console, feeds, metrics, healthz, openapi.json …),
    read from its routes: an API root of such a name would answer /NAME/ beside the node's own /NAME, or be
    hidden by it (``Node.create_api_root`` refuses them; ``kizuna api-roots create`` passes them)."""
    names = set()
    for route in _routes(node, HashMatchService(node)):
        path = route.path if isinstance(route, Route | Mount) else ""
        first = path.strip("/").partition("/")[0]
        if first and not first.startswith("{"):  # "/" and "/{api_root}/…" name no segment of their own
            names.add(first)
    return frozenset(names)


def create_app(node: Node, tls: bool = False) -> Starlette:
    """The whole HTTP API of ``node``: every API response, errors included, is TAXII JSON (the health
    endpoints answer plain JSON and Prometheus text)."""
    hashes = HashMatchService(node)  # one set of bank indexes for the API and the console
    app = Starlette(
        routes=_routes(node, hashes),
        middleware=[Middleware(RequestMetrics), *([Middleware(TransportSecurity)] if tls else []),
                    Middleware(AnswerFailures), Middleware(RefuseNul)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.node = watch_arrivals(node)  # the operations' watchlists judged as objects arrive
    # Before the first request, not during it; in a thread of its own, whose reader connection (and the
    # file pages it mapped) goes with it, where the main thread's would stay for the life of the server.
    warming = threading.Thread(target=_warm, args=(node,), name="kizuna-warm")
    warming.start()
    warming.join()
    node.learn_stored_shapes()  # the read path's collection summaries, learnt beside the requests
    node.read_pages_ahead()  # a paging client's next page, computed while it reads this one
    # The console's Import page converts through the formats room, which kizuna.web may not import.
    app.state.importer = import_upload
    # Its operation pages read kizuna/ops (a sibling too) through these two functions.
    app.state.operations = OperationsSource(visible_operations, operation_board)
    # Its hash page matches and records verdicts through kizuna/hashes, with the API's bank indexes.
    app.state.hashes = HashesSource(hashes.match_for_console, functools.partial(opinion_of, node), DEFAULT_THRESHOLD)
    return app


def _warm(node: Node) -> None:
    """What a server's first requests would otherwise do themselves, done before it serves: the console's
    catalogs and locale data (a few milliseconds), and the dashboard's stored counts (read: a tenth of a
    second at a million objects; brought up to date after a bulk import: seconds, once)."""
    try:
        node.store.lean_reads()
        warm_console()
        warm_counts(node)
    except Exception:  # noqa: BLE001 - a store closed early, say: the first requests do it instead
        log.debug("warming the read caches stopped", exc_info=True)


def app_from_environment() -> Starlette:
    """The app for ``uvicorn --factory`` workers: the node named by ``KIZUNA_DATA``, with the limits and
    TLS setting ``kizuna serve`` put in ``KIZUNA_LIMITS`` and ``KIZUNA_TLS``."""
    app = create_app(Node.open(resolve_data_dir(os.environ.get("KIZUNA_DATA"))),
                     tls=bool(os.environ.get("KIZUNA_TLS")))
    app.state.limits = RequestLimits.from_settings(os.environ.get("KIZUNA_LIMITS"),
                                                   shared=shared_bucket_maker(app.state.node.store))
    set_aside_long_lived()  # the worker's modules, app and node as it starts: see core/bulk_import.py
    return app
