"""HTTP plumbing every Kizuna API shares: TAXII JSON responses and error objects, token
authentication, bounded request bodies, and the handlers that keep even a 404 or a 500 TAXII JSON.

The TAXII, detection and federation routes all build on this module; none of them builds on another.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kizuna.core.errors import BadRequest, KizunaError, PayloadTooLarge, Unauthorized
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.taxii.media import TAXII_MEDIA_TYPE, check_accept

_CHALLENGE = 'Bearer realm="kizuna", Basic realm="kizuna"'

Handler = Callable[[Request, Principal], Awaitable[Response]]


def taxii_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=TAXII_MEDIA_TYPE, headers=headers)


def error_response(status: int, title: str, description: str, headers: dict[str, str] | None = None) -> Response:
    body = {"title": title, "description": description, "http_status": str(status)}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": _CHALLENGE}
    return taxii_response(orjson.dumps(body), status, headers)


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


async def authenticated(request: Request) -> Principal:
    """The principal of the request's token; Unauthorized (401) without a valid one, and a failed
    attempt recorded, as for every API endpoint."""
    node: Node = request.app.state.node
    token = presented_token(request)
    principal = await run_in_threadpool(node.authenticate, token) if token else None
    if principal is None:
        if token:
            client = request.client.host if request.client else None
            await run_in_threadpool(node.record_auth_failure, token, request.url.path, client)
        raise Unauthorized("send a Kizuna API token as 'Authorization: Bearer <token>'")
    return principal


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Negotiation, authentication and error rendering shared by every TAXII endpoint."""

    async def run(request: Request) -> Response:
        try:
            check_accept(request.headers.get("accept"))
            return await handler(request, await authenticated(request))
        except KizunaError as exc:
            return error_response(exc.status, exc.title, exc.description)

    return run


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length must be a whole number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than this API root's max_content_length ({limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than this API root's max_content_length ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    description = "no such TAXII resource" if exc.status_code == 404 else str(exc.detail)
    # The router's headers travel with the error: a 405 must say which methods the resource has
    # (Allow, RFC 9110 §15.5.6), which schemathesis found missing.
    return error_response(exc.status_code, titles.get(exc.status_code, "Error"), description,
                          dict(exc.headers) if exc.headers else None)


async def server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "Internal server error", "the server could not complete the request")
