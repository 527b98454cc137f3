"""`GET /feeds/<name>.<ext>`: the operator's named feeds for firewalls, resolvers and IDS sensors.

A device polls its feed every few minutes, so the common answer must cost next to nothing: each
(feed, caller) pair keeps the validator of the copy it was last sent together with the freshness
tuple it was built from (`kizuna.core.feeds.freshness`: two index lookups and the policy generation)
and the instant the clock alone would change it (an indicator's `valid_until` or a future
`valid_from`). A request whose `If-None-Match` names that validator while the tuple is unchanged
and that instant has not come is answered 304 without reading a single object. Anything else
rebuilds the list from the caller's view, and if the rebuilt list has the same digest it is still a
304 (the work is done, but nothing is sent).

Errors are TAXII error objects: 401 without a valid token, 404 for a feed that does not exist,
is served under another extension, or covers a collection the caller may not read — one answer for
all three, so a feed's existence leaks nothing. A 200 is audited as egress by the read it comes
from; a 304 sends no object and records nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import IO, Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kizuna.core.errors import KizunaError, NotFound
from kizuna.core.feeds import FeedDefinition, feed_for, freshness
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.formats.feed_build import MEDIA_TYPES, build_feed
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import Collection
from kizuna.taxii.http import authenticated, kizuna_error_response

_CACHE_SIZE: Final = 1024
_PIECE: Final = 256 * 1024  # bytes of the body handed to the transport at a time


@dataclass(frozen=True, slots=True)
class _Sent:
    fresh: tuple[Any, ...]
    etag: str
    last_modified: float  # seconds since the epoch: when this caller's copy last changed
    next_change: int | None  # µs; the clock changes the list then


def _matches(header: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against any listed validator, or '*'."""
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _not_modified_since(header: str | None, last_modified: float) -> bool:
    """RFC 9110 If-Modified-Since. A date later than the server's clock is invalid (13.1.3) and the field is
    ignored: a device with a wrong clock must still receive the list, not a 304 until that date comes."""
    if not header:
        return False
    try:
        since = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if since > time.time():
        return False
    return int(last_modified) <= since


class FeedService:
    """The feed endpoint's handler and what it remembers of the copies it sent."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._sent: OrderedDict[tuple[str, str], _Sent] = OrderedDict()
        self._lock = threading.Lock()

    def _remembered(self, key: tuple[str, str]) -> _Sent | None:
        with self._lock:
            return self._sent.get(key)

    def _remember(self, key: tuple[str, str], sent: _Sent) -> None:
        with self._lock:
            self._sent[key] = sent
            self._sent.move_to_end(key)
            while len(self._sent) > _CACHE_SIZE:
                self._sent.popitem(last=False)

    def _locate(self, principal: Principal, name: str, extension: str) -> tuple[FeedDefinition, Collection, Any]:
        feed, collection = feed_for(self.node, principal, name, extension)
        return feed, collection, freshness(self.node, feed, collection, principal)

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except KizunaError as exc:
            return kizuna_error_response(exc)

    async def _handle(self, request: Request) -> Response:
        name, dot, extension = str(request.path_params["file"]).rpartition(".")
        # Not `endpoint`: a feed is text for a device, so no TAXII Accept negotiation; the same token check.
        principal = await authenticated(request)
        if not dot:
            raise NotFound("no such feed")
        feed, collection, fresh = await run_in_threadpool(self._locate, principal, name, extension)
        key = (feed.name, principal.key)
        inm, ims = request.headers.get("if-none-match"), request.headers.get("if-modified-since")
        sent = self._remembered(key)
        if sent is not None and sent.fresh == fresh and (sent.next_change is None or now_micros() < sent.next_change):
            if _matches(inm, sent.etag) or (inm is None and _not_modified_since(ims, sent.last_modified)):
                return self._not_modified(sent)
        built = await run_in_threadpool(build_feed, self.node, feed, collection, principal)
        # A second early: the server's Date header is taken once a second, and Last-Modified must not be later
        # than it (RFC 9110 8.8.2.1).
        kept = sent.last_modified if sent is not None and sent.etag == built.etag else int(time.time()) - 1
        sent = _Sent(fresh, built.etag, kept,
                     built.report.next_change)
        self._remember(key, sent)
        if _matches(inm, sent.etag) or request.method == "HEAD":
            built.body.close()
            if request.method != "HEAD":
                return self._not_modified(sent)
        headers = self._validators(sent)
        headers["Content-Length"] = str(built.size)
        if request.method == "HEAD":
            return Response(b"", media_type=MEDIA_TYPES[feed.format], headers=headers)
        return StreamingResponse(_pieces(built.body), media_type=MEDIA_TYPES[feed.format], headers=headers)

    @staticmethod
    def _validators(sent: _Sent) -> dict[str, str]:
        # private: each caller's list is its own view; no-cache: a cache must ask (cheaply) every time
        return {"ETag": sent.etag, "Last-Modified": formatdate(sent.last_modified, usegmt=True),
                "Cache-Control": "private, no-cache", "Vary": "Authorization"}

    def _not_modified(self, sent: _Sent) -> Response:
        return Response(status_code=304, headers=self._validators(sent))


async def _pieces(body: IO[bytes]) -> AsyncIterator[bytes]:
    """The body a slice at a time, read in a worker thread (it may be on disk), then closed, also when the client
    goes away. Written whole, a body the socket cannot take at once would be copied into the transport's own
    buffer; slice by slice, the server waits for the socket to drain between slices."""
    try:
        while piece := await run_in_threadpool(body.read, _PIECE):
            yield piece
    finally:
        body.close()


async def _no_listing(request: Request) -> Response:
    """``/feeds/`` names no feed: answered as one that does not exist (after the token check, as every feed is),
    not as an API root called "feeds"."""
    try:
        await authenticated(request)
        raise NotFound("no such feed")
    except KizunaError as exc:
        return kizuna_error_response(exc)


def feed_routes(node: Node) -> list[Route]:
    service = FeedService(node)
    return [Route("/feeds/{file}", service.handle, methods=["GET", "HEAD"]),
            Route("/feeds/", _no_listing, methods=["GET", "HEAD"])]
