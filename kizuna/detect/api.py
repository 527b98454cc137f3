"""HTTP submission of observations: `POST /{api_root}/detect/observations/`.

A sensor or SIEM posts what it saw and gets back which of the node's indicators it matched:

* body: STIX observed-data with its cyber-observables (a bundle, a JSON list, or a TAXII envelope),
  or log records: JSON lines (Zeek, Suricata EVE, ECS, or a mapping's format) or Zeek TSV with its
  header. `format=auto` (the default) tells STIX from logs by the body and picks the mapping of
  every log line by its fields; `format=stix|zeek|suricata|ecs|<mapping name>` forces one. An
  observed-data object or log line that cannot be used (say, its time is not a real date) is
  counted and reported (`unparsed`, with line numbers or ids); the rest is matched;
* `collection` (repeatable, id or alias): the collections whose indicators are matched; default,
  every collection of the API root the token may read. Indicators are read through the node's
  read policy, so a token matches only against indicators it could read over TAXII;
* `store` (id or alias): also store the sightings in this collection (the token must be able to
  write it), where federation shares them back under the collection's agreement.

The answer is JSON: the hits (one per indicator per observation or record, as `kizuna match
--alerts` writes them: the indicator's id, and its name for a person to read), the sightings
(aggregated per indicator per hour, `observed_data_refs` set for STIX input) and counts.
Authentication, content negotiation and error bodies are the TAXII endpoints' own
(`kizuna.taxii.http.endpoint`).

Compiled indicator sets are cached per (token, collections) and rebuilt when a collection's
object count or newest addition changes, or the node's sharing policy does.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizuna.core import metrics
from kizuna.core.errors import BadRequest
from kizuna.core.filters import Endpoint, parse_filters, query_values
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.errors import DetectError
from kizuna.detect.mappings import LogReader, Mapping, shipped_mappings
from kizuna.taxii.http import endpoint, read_body, taxii_response

_PAGE = 1000
_CACHE_SIZE = 16
_MAX_HITS_IN_ANSWER = 10_000


@dataclass
class _Compiled:
    freshness: tuple[Any, ...]
    engine: DetectionEngine
    load: dict[str, int]


class DetectionService:
    """Compiled indicator sets for the node's tokens, and the request handler that uses them."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._mappings = shipped_mappings()
        self._cache: OrderedDict[tuple[Any, ...], _Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def _collections(self, principal: Principal, api_root: str, refs: list[str]) -> list[Any]:
        if refs:
            return [self.node.collection_for(principal, api_root, ref) for ref in refs]
        return [c for c in self.node.collections_for(principal, api_root) if principal.can_read(c)]

    def _freshness(self, collections: list[Any]) -> tuple[Any, ...]:
        stats = tuple(self.node.store.collection_stats(c.pk) for c in collections)
        return (self.node.store.policy_generation(), stats)

    def _indicators(self, principal: Principal, api_root: str, collection: Any) -> list[dict[str, Any]]:
        viewer = self.node.readable(principal, api_root, collection.id)
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = [("match[type]", "indicator"), ("limit", str(_PAGE))]
            if cursor is not None:
                params.append(("next", cursor))
            page = self.node.read(viewer, Endpoint.OBJECTS, parse_filters(params, Endpoint.OBJECTS))
            found.extend(orjson.loads(body) for _row, body in page.items)
            if not page.more or page.next is None:
                return found
            cursor = page.next

    def engine_for(self, principal: Principal, api_root: str, refs: list[str]) -> _Compiled:
        collections = self._collections(principal, api_root, refs)
        key = (principal.key, api_root, tuple(sorted(c.pk for c in collections)))
        freshness = self._freshness(collections)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.freshness == freshness:
                self._cache.move_to_end(key)
                return cached
        engine = DetectionEngine(self.node.acting_identity(principal))
        load: dict[str, int] = {}
        now = time.time()
        for collection in collections:
            indicators = self._indicators(principal, api_root, collection)
            for status, count in engine.load_indicators(indicators, now=now).items():
                load[status] = load.get(status, 0) + count
        compiled = _Compiled(freshness, engine, load)
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def mappings_for(self, fmt: str) -> tuple[list[Mapping], str | None]:
        """(mappings to try, forced mapping name) for a `format` value."""
        if fmt == "auto":
            return list(self._mappings.values()), None
        if fmt in self._mappings:
            return list(self._mappings.values()), fmt
        family = [m for name, m in self._mappings.items() if name == fmt or name.startswith(fmt + "-")]
        if not family:
            known = sorted({"auto", "stix", *self._mappings, *(n.split("-")[0] for n in self._mappings)})
            raise BadRequest(f"unknown format {fmt!r}; one of: {', '.join(known)}")
        return family, None

    def match(
        self, principal: Principal, api_root: str, params: dict[str, list[str]], body: bytes
    ) -> dict[str, Any]:
        requested = (params.get("format") or ["auto"])[-1]
        stix = _looks_like_stix(body) if requested == "auto" else None
        fmt = "stix" if requested == "stix" or stix is not None else requested
        mappings, forced = self.mappings_for(fmt) if fmt != "stix" else ([], None)  # 400 before any work
        compiled = self.engine_for(principal, api_root, params.get("collection", []))
        # The cached index is shared; each request gets its own counters and sightings.
        engine = DetectionEngine(compiled.engine.aggregator.identity_id)
        engine.index = compiled.engine.index
        # The body is the input whose share of the stored sightings this request's hits are: posted again, it
        # replaces its share; another body adds to the same sightings (core/sighting_shares.py).
        engine.aggregator.begin_input(f"body:{hashlib.sha256(body).hexdigest()}")
        answer: dict[str, Any] = {"indicators": engine.index.stats(), "format": fmt}
        if fmt == "stix":
            objects = stix if stix is not None else _stix_objects(body)
            rejected: list[dict[str, Any]] = []

            def bad(sdo: Any, reason: str) -> None:
                rejected.append({"id": sdo.get("id"), "reason": reason})

            try:
                alerts = engine.submit_observed_data(objects, on_error=bad)
            except DetectError as exc:
                raise BadRequest(f"observed-data could not be matched: {exc}") from exc
            answer["observations"] = engine.events_seen
            # An unusable observed-data object is reported, like a bad log line; the others match.
            answer.update(unparsed=len(rejected), unparsed_objects=rejected[:100])
        else:
            reader = LogReader(mappings, forced=forced)
            alerts = list(engine.line_matcher(reader).alerts(body.splitlines()))
            stats = reader.stats
            if requested == "auto" and stats.events == 0:
                first = f"; line {stats.problems[0].line}: {stats.problems[0].reason}" if stats.problems else ""
                raise BadRequest(
                    f"the body is neither STIX observed-data nor log lines of a known format ({stats.lines} "
                    f"lines, {stats.problem_count} unparsable, {stats.skipped} of no known format{first})"
                )
            answer.update(
                lines=stats.lines,
                observations=stats.events,
                unmapped=stats.skipped,
                # A forced format that does not fit a record: counted and named, as `kizuna match --mapping` does.
                unlike_forced_format=stats.unlike,
                first_unlike={"line": stats.first_unlike.line, "reason": stats.first_unlike.reason}
                if stats.first_unlike else None,
                unparsed=stats.problem_count,
                unparsed_lines=[{"line": p.line, "reason": p.reason} for p in stats.problems[:100]],
            )
        answer["hit_count"] = len(alerts)
        metrics.matcher_ran(int(answer["observations"]), len(alerts))
        answer["hits"] = [a.as_json() for a in alerts[:_MAX_HITS_IN_ANSWER]]
        sightings = engine.aggregator.sightings()
        answer["sightings"] = sightings
        store = params.get("store")
        if store:
            target = self.node.writable(principal, api_root, store[-1])
            report = (self.node.store_sightings(principal, target, sightings, engine.aggregator.shares())
                      if sightings else None)
            answer["stored"] = report.to_taxii() if report is not None else {"success_count": 0}
        return answer

    async def handle(self, request: Request, principal: Principal) -> Response:
        api_root = request.path_params["api_root"]
        root = await run_in_threadpool(self.node.api_root, api_root)
        body = await read_body(request, root.max_content_length)
        given = request.query_params.multi_items()
        for name, _ in given:
            if name not in ("format", "collection", "store"):
                raise BadRequest(f"unknown query parameter {name!r} (format, collection, store)")
        params = query_values(given, repeatable=("collection",))
        answer = await run_in_threadpool(self.match, principal, api_root, params, body)
        return taxii_response(orjson.dumps(answer))


def _looks_like_stix(body: bytes) -> list[dict[str, Any]] | None:
    """The STIX objects of the body when it is STIX (a bundle, envelope, list or observed-data); else None.

    Log records are JSON lines (or Zeek TSV), so a body that is one JSON value holding a bundle,
    an envelope or STIX objects with ids is STIX; anything else is read as log lines.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        if data.get("type") == "bundle" or isinstance(data.get("objects"), list) or _is_stix_object(data):
            return _stix_objects(body)
    elif isinstance(data, list) and data and all(_is_stix_object(o) for o in data):
        return _stix_objects(body)
    return None


def _is_stix_object(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("type"), str)
        and isinstance(item.get("id"), str)
        and item["id"].startswith(item["type"] + "--")
    )


def _stix_objects(body: bytes) -> list[dict[str, Any]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("type") != "bundle" and isinstance(data.get("objects"), list):
        data = data["objects"]  # a TAXII envelope
    items = data if isinstance(data, list) else [data]
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("observed-data must be sent as JSON objects")
        if item.get("type") == "bundle":
            inside = item.get("objects", [])
            if not isinstance(inside, list) or not all(isinstance(o, dict) for o in inside):
                raise BadRequest("a bundle's objects must be a list of JSON objects")
            out.extend(inside)
        else:
            out.append(item)
    if not out:
        raise BadRequest("the body holds no STIX object to match")
    return out


def routes(node: Node) -> list[Route]:
    """The detection routes, for `kizuna.app.create_app` to mount next to the TAXII ones."""
    service = DetectionService(node)
    return [Route("/{api_root}/detect/observations/", endpoint(service.handle), methods=["POST"])]
