"""Kizuna-to-Kizuna HTTP extensions beside the TAXII API: tombstones and partner status.

``GET /{api_root}/collections/{id}/tombstones/?deleted_after=&withdrawn_after=&limit=``
    What left the collection for this token (recall.py); read access to the collection required.
    Both positions are integers (µs) from the previous page's ``deleted_last``/``withdrawn_last``.
``GET /{api_root}/federation/partners/``
    Every partner with its status, without secrets; only for tokens of the node's own organisation.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizuna.core.errors import BadRequest, Forbidden
from kizuna.core.filters import query_values
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.federation.recall import DEFAULT_LIMIT, MAX_LIMIT, tombstones_for
from kizuna.federation.state import FederationState
from kizuna.numerals import whole_number
from kizuna.taxii.http import endpoint, taxii_response


def _position(params: dict[str, list[str]], name: str) -> int:
    text = params.get(name, ["0"])[0]
    # Positions are stored as signed 64-bit integers: a larger one (19 digits can exceed it, as
    # schemathesis found) would be echoed back as a position no page can have, or overflow the bind.
    position = whole_number(text)
    if position is None:
        raise BadRequest(f"{name} must be a non-negative integer (microseconds) from a previous page")
    return position


def _limit(params: dict[str, list[str]]) -> int:
    text = params.get("limit", [str(DEFAULT_LIMIT)])[0]
    limit = whole_number(text, MAX_LIMIT)
    if limit is None or limit < 1:
        raise BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}")
    return limit


def partners_payload(node: Node) -> dict[str, Any]:
    state = FederationState(node.store)
    rows = []
    for name, partner, problem in state.partner_entries():
        config = partner.public() if partner is not None else {"name": name, "config_error": problem}
        rows.append({**config, "status": state.status_view(name)})
    return {"partners": rows}


def routes(node: Node) -> list[Route]:
    """The federation routes, for `kizuna.app.create_app` to mount next to the TAXII ones."""

    async def tombstones(request: Request, principal: Principal) -> Response:
        params = query_values(request.query_params.multi_items())  # each taken once, as TAXII's own
        deleted_after = _position(params, "deleted_after")
        withdrawn_after = _position(params, "withdrawn_after")
        limit = _limit(params)

        def read() -> bytes:
            viewer = node.readable(principal, request.path_params["api_root"], request.path_params["collection"])
            return orjson.dumps(tombstones_for(node, viewer, deleted_after, withdrawn_after, limit).as_json())

        return taxii_response(await run_in_threadpool(read))

    async def partners(request: Request, principal: Principal) -> Response:
        # There are no HTTP administrator tokens: the node's own organisation stands for its operators.
        own = principal.organisation_id is not None and principal.organisation_id == node.home_organisation_id
        if not (principal.is_admin or (own and principal.agreement_id is None)):
            raise Forbidden("partner status is for the node's own organisation")

        def read() -> bytes:
            node.api_root(request.path_params["api_root"])
            return orjson.dumps(partners_payload(node))

        return taxii_response(await run_in_threadpool(read))

    return [
        Route("/{api_root}/collections/{collection}/tombstones/", endpoint(tombstones), methods=["GET"]),
        Route("/{api_root}/federation/partners/", endpoint(partners), methods=["GET"]),
    ]
