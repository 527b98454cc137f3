"""The TAXII 2.1 HTTP API: parse the request, call the node, render the answer.

Nothing here decides what a principal may see; it only translates between HTTP and
:class:`kizuna.core.node.Node`.  Every response, errors included, is TAXII JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizuna.core.errors import BadRequest
from kizuna.core.filters import Endpoint, is_stix_id, parse_filters
from kizuna.core.ingest import parse_envelope
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.query import Page
from kizuna.stix.timestamps import format_timestamp
from kizuna.taxii.http import endpoint, read_body, taxii_response
from kizuna.taxii.media import TAXII_MEDIA_TYPE, TERMS_HEADER, check_content_type

_STIX_MEDIA_TYPE = "application/stix+json;version=2.1"


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _date_headers(page: Page, added_after: int | None) -> dict[str, str]:
    # On an empty page both headers echo added_after, when given, so a client that
    # resumes from X-TAXII-Date-Added-Last stays where it is; otherwise they are omitted.
    first, last = page.first_added, page.last_added
    if first is None or last is None:
        if added_after is None:
            return {}
        first = last = added_after
    return {
        "X-TAXII-Date-Added-First": format_timestamp(first),
        "X-TAXII-Date-Added-Last": format_timestamp(last),
    }


def _envelope(page: Page) -> bytes:
    parts = [b'{"more":', b"true" if page.more else b"false"]
    if page.next is not None:
        parts += [b',"next":', orjson.dumps(page.next)]
    if page.items:
        parts += [b',"objects":[', b",".join(body for _, body in page.items), b"]"]
    parts.append(b"}")
    return b"".join(parts)


def _collection_resource(principal: Principal, collection: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": collection.id,
        "title": collection.title,
        "can_read": principal.can_read(collection),
        "can_write": principal.can_write(collection),
        "media_types": list(collection.media_types),
    }
    if collection.description:
        resource["description"] = collection.description
    if collection.alias:
        resource["alias"] = collection.alias
    return resource


def _object_id(request: Request) -> str:
    object_id = request.path_params["object_id"]
    if not is_stix_id(object_id):
        raise BadRequest(f"{object_id!r} is not a STIX identifier (type--UUID)")
    return object_id


@endpoint
async def discovery(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node

    def build() -> dict[str, Any]:
        roots = [f"/{root.name}/" for root in node.store.list_api_roots()]
        body: dict[str, Any] = {"title": node.title, "description": "Kizuna TAXII 2.1 server"}
        if roots:
            body["default"] = "/main/" if "/main/" in roots else roots[0]
            body["api_roots"] = roots
        return body

    return taxii_response(orjson.dumps(await run_in_threadpool(build)))


@endpoint
async def api_root(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node
    root = await run_in_threadpool(node.api_root, request.path_params["api_root"])
    body: dict[str, Any] = {
        "title": root.title,
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": root.max_content_length,
    }
    if root.description:
        body["description"] = root.description
    return taxii_response(orjson.dumps(body))


@endpoint
async def status(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node
    body = await run_in_threadpool(
        node.status, principal, request.path_params["api_root"], request.path_params["status_id"]
    )
    return taxii_response(body)


@endpoint
async def collections(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node
    found = await run_in_threadpool(node.collections_for, principal, request.path_params["api_root"])
    body = {"collections": [_collection_resource(principal, c) for c in found]} if found else {}
    return taxii_response(orjson.dumps(body))


@endpoint
async def collection(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node
    found = await run_in_threadpool(
        node.collection_for, principal, request.path_params["api_root"], request.path_params["collection"]
    )
    return taxii_response(orjson.dumps(_collection_resource(principal, found)))


async def _read_page(
    request: Request, principal: Principal, kind: Endpoint, object_id: str | None
) -> tuple[Page, dict[str, str]]:
    """The page and its headers: the date_added ones, and on a page of objects the reader's terms
    (``TERMS_HEADER``) when a policy decides them."""
    node: Node = request.app.state.node
    filters = parse_filters(_params(request), kind)

    def read() -> tuple[Page, dict[str, str]]:
        viewer = node.readable(principal, request.path_params["api_root"], request.path_params["collection"])
        page = node.read(viewer, kind, filters, object_id, ahead=True, head=request.method == "HEAD")
        headers = _date_headers(page, filters.added_after)
        if kind is Endpoint.OBJECTS and viewer.policy is not None:
            headers[TERMS_HEADER] = viewer.policy.terms()
        return page, headers

    return await run_in_threadpool(read)


@endpoint
async def manifest(request: Request, principal: Principal) -> Response:
    page, headers = await _read_page(request, principal, Endpoint.MANIFEST, None)
    records = [
        {
            "id": row.stix_id,
            "date_added": format_timestamp(row.date_added),
            "version": format_timestamp(row.version),
            "media_type": _STIX_MEDIA_TYPE,
        }
        for row, _ in page.items
    ]
    body: dict[str, Any] = {"more": page.more}
    if page.next is not None:
        body["next"] = page.next
    if records:
        body["objects"] = records
    return taxii_response(orjson.dumps(body), headers=headers)


@endpoint
async def objects(request: Request, principal: Principal) -> Response:
    if request.method == "POST":
        return await _add_objects(request, principal)
    page, headers = await _read_page(request, principal, Endpoint.OBJECTS, None)
    return taxii_response(_envelope(page), headers=headers)


async def _add_objects(request: Request, principal: Principal) -> Response:
    node: Node = request.app.state.node
    check_content_type(request.headers.get("content-type"))
    root_name, ref = request.path_params["api_root"], request.path_params["collection"]
    root = await run_in_threadpool(node.api_root, root_name)
    target = await run_in_threadpool(node.writable, principal, root_name, ref)
    body = await read_body(request, root.max_content_length)

    def add() -> bytes:
        report = node.add_objects(principal, target, parse_envelope(body))
        return orjson.dumps(report.to_taxii())

    return taxii_response(await run_in_threadpool(add), status=202)


@endpoint
async def object_(request: Request, principal: Principal) -> Response:
    object_id = _object_id(request)
    node: Node = request.app.state.node
    if request.method == "DELETE":
        filters = parse_filters(_params(request), Endpoint.DELETE)
        await run_in_threadpool(
            node.delete_object, principal, request.path_params["api_root"],
            request.path_params["collection"], object_id, filters,
        )
        return taxii_response(b"", 200)
    page, headers = await _read_page(request, principal, Endpoint.OBJECT, object_id)
    return taxii_response(_envelope(page), headers=headers)


@endpoint
async def versions(request: Request, principal: Principal) -> Response:
    object_id = _object_id(request)
    page, headers = await _read_page(request, principal, Endpoint.VERSIONS, object_id)
    body: dict[str, Any] = {"more": page.more}
    if page.next is not None:
        body["next"] = page.next
    if page.items:
        body["versions"] = [format_timestamp(row.version) for row, _ in page.items]
    return taxii_response(orjson.dumps(body), headers=headers)


def routes(node: Node) -> list[Route]:
    """The TAXII 2.1 routes; `kizuna.app.create_app` mounts them beside the other rooms' routes."""
    collection_path = "/{api_root}/collections/{collection}"
    return [
        Route("/taxii2/", discovery, methods=["GET"]),
        Route("/{api_root}/", api_root, methods=["GET"]),
        Route("/{api_root}/status/{status_id}/", status, methods=["GET"]),
        Route("/{api_root}/collections/", collections, methods=["GET"]),
        Route(collection_path + "/", collection, methods=["GET"]),
        Route(collection_path + "/manifest/", manifest, methods=["GET"]),
        Route(collection_path + "/objects/", objects, methods=["GET", "POST"]),
        Route(collection_path + "/objects/{object_id}/", object_, methods=["GET", "DELETE"]),
        Route(collection_path + "/objects/{object_id}/versions/", versions, methods=["GET"]),
    ]
