"""``/healthz``, ``/readyz`` and ``/metrics``, and the middleware that counts every request.

``/healthz`` answers while the process can answer at all; ``/readyz`` runs the readiness checks the
rooms supply (store, migrations, sync worker) and answers 503 naming what failed.  Both are open to
anyone and say nothing about objects.  ``/metrics`` is the Prometheus exposition, served to loopback
clients or to tokens holding the metrics right, as ``[metrics] access`` in ``kizuna.toml`` says.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizuna.core import metrics
from kizuna.core.errors import Forbidden, KizunaError, Unauthorized
from kizuna.core.health import ReadinessCheck, metrics_access, metrics_readers, run_checks
from kizuna.core.node import Node
from kizuna.taxii.http import kizuna_error_response, presented_token

_JSON = "application/json"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "(unmatched)"  # the endpoint label of a request no route answered: raw paths are unbounded


def health_routes(
    node: Node, readiness: Callable[[], list[ReadinessCheck]], collectors: Iterable[metrics.Collector],
) -> list[Route]:
    """The routes; ``readiness`` makes a fresh list of checks per probe, ``collectors`` read the store."""
    access = metrics_access(node.config)
    scraped = list(collectors)

    async def healthz(request: Request) -> Response:
        return Response(orjson.dumps({"status": "alive"}), media_type=_JSON)

    async def readyz(request: Request) -> Response:
        ready, answers = await run_in_threadpool(run_checks, readiness())
        body = {"status": "ready" if ready else "not ready", "checks": answers}
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type=_JSON,
                        headers={"Cache-Control": "no-store"})

    async def metrics_endpoint(request: Request) -> Response:
        try:
            if access.mode == "token":
                await run_in_threadpool(_check_metrics_token, node, request)
            elif not _from_loopback(request):
                raise Forbidden("metrics are served to loopback clients only ([metrics] access in kizuna.toml)")
        except KizunaError as exc:
            return kizuna_error_response(exc)
        body, media_type = await run_in_threadpool(metrics.exposition, scraped)
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else None
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False  # a Unix socket or an unknown peer is not known to be local
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def _check_metrics_token(node: Node, request: Request) -> None:
    token = presented_token(request)
    principal = node.authenticate(token) if token else None
    if principal is None:
        if token:
            node.record_auth_failure(token, request.url.path, request.client.host if request.client else None)
        raise Unauthorized("send a token holding the metrics right as 'Authorization: Bearer <token>'")
    if principal.key not in metrics_readers(node.store):
        raise Forbidden("this token does not hold the metrics right (kizuna metrics grant TOKEN_ID)")


class RequestMetrics:
    """ASGI middleware: count each HTTP request by route template, method and status, and time it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        noted = False

        def note() -> None:
            nonlocal noted
            noted = True
            # The router wrote the matched route into the shared scope: label by its template.
            route = scope.get("route")
            template = getattr(route, "path", None)
            # A mounted app's routes (the console under /console) are relative to the mount, which the
            # router put in root_path: without it /console/ and the root's redirect shared the label "/".
            endpoint = scope.get("root_path", "") + template if template else UNMATCHED
            method = scope.get("method", "GET")
            metrics.http_request(endpoint, method if method in _METHODS else "OTHER", status,
                                 time.perf_counter() - started)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last byte leaves: a client that has its answer finds it counted
                # (counting after the send raced a scrape that followed at once, on a busy machine).
                note()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if not noted:
                note()
