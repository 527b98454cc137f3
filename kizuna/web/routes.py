"""Every console route, in one list that ``kizuna.app`` mounts before the TAXII routes (whose
``/{api_root}/`` would otherwise catch ``/console/``).

A new page: write ``handler(visit) -> Response`` in its own module, add a ``Route`` here wrapped in
:func:`~kizuna.web.page.page` (see docs/web.md).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from kizuna.core.node import Node
from kizuna.web import (
    agreements,
    audit_log,
    auth,
    browse,
    dashboard,
    hashes,
    imports,
    library,
    objects,
    operations,
    partners,
    search,
    share,
    tokens,
)
from kizuna.web.page import Handler, not_found, operators_only, page
from kizuna.web.security import ConsoleStatic, protect

STATIC = Path(__file__).parent / "static"


def console_routes() -> list[BaseRoute]:
    return [
        Route("/", page(dashboard.dashboard_page), methods=["GET"]),
        Route("/sign-in", page(auth.sign_in_page, signed_in=False), methods=["GET"]),
        Route("/sign-in", page(auth.sign_in_submit, signed_in=False), methods=["POST"]),
        Route("/sign-out", page(auth.sign_out_submit, signed_in=False), methods=["POST"]),
        Route("/language", page(auth.language_submit, signed_in=False), methods=["POST"]),
        Route("/browse", page(browse.browse_page), methods=["GET"]),
        Route("/search", page(search.search_page), methods=["GET"]),
        Route("/library", page(library.library_page), methods=["GET"]),
        Route("/share", page(share.share_page), methods=["GET"]),
        Route("/share", page(share.share_submit), methods=["POST"]),
        Route("/share/check", page(share.pattern_check), methods=["GET"]),
        Route("/hashes", page(hashes.hashes_page), methods=["GET"]),
        Route("/hashes", page(hashes.hashes_submit, upload_limit=hashes.UPLOAD_LIMIT), methods=["POST"]),
        Route("/hashes/opinion", page(hashes.opinion_submit), methods=["POST"]),
        Route("/operations", page(operations.operations_page), methods=["GET"]),
        Route("/operations/{slug}", page(operations.operation_page), methods=["GET"]),
        Route("/objects/{object_id}", page(objects.object_page), methods=["GET"]),
        Route("/objects/{object_id}/stix.json", page(objects.download), methods=["GET"]),
        Route("/objects/{object_id}/graph.json", page(objects.graph), methods=["GET"]),
        *operator_routes(),
        Mount("/static", app=ConsoleStatic(directory=STATIC), name="static"),
        Route("/{rest:path}", not_found),
    ]


def _operator(handler: Handler, method: str, path: str, upload_limit: int = 0) -> Route:
    return Route(path, page(operators_only(handler), upload_limit=upload_limit), methods=[method])


def operator_routes() -> list[BaseRoute]:
    """The pages for the node's operators (core/operators.py); anyone else gets the 404 page."""
    return [
        _operator(partners.partners_page, "GET", "/partners"),
        _operator(agreements.agreements_page, "GET", "/agreements"),
        _operator(agreements.agreement_page, "GET", "/agreements/{agreement_id}"),
        _operator(tokens.tokens_page, "GET", "/tokens"),
        _operator(tokens.token_create, "POST", "/tokens"),
        _operator(tokens.revoke_confirm, "GET", "/tokens/{token_id}/revoke"),
        _operator(tokens.revoke_submit, "POST", "/tokens/{token_id}/revoke"),
        _operator(audit_log.audit_page, "GET", "/audit"),
        _operator(imports.import_page, "GET", "/import"),
        _operator(imports.import_submit, "POST", "/import", upload_limit=imports.UPLOAD_LIMIT),
    ]


async def _to_console(request: Request) -> Response:
    return protect(RedirectResponse("/console/", status_code=307))


async def _no_icon(request: Request) -> Response:
    """The icon browsers ask for by habit: the console names its own (base.html), so this one is absent,
    rather than a redirect to the TAXII API root ``/favicon.ico/`` and its 401."""
    return protect(Response(status_code=404))


def web_routes(node: Node) -> list[BaseRoute]:
    """The console under /console/ (every response with the security headers), / redirecting to it, and
    /favicon.ico answered as absent."""
    return [
        Route("/", _to_console, methods=["GET", "HEAD"]),
        Route("/favicon.ico", _no_icon, methods=["GET", "HEAD"]),
        Mount("/console", routes=console_routes()),
    ]
