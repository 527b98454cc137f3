"""`POST /{api_root}/hashes/match`: match images or hashes against the caller's visible banks.

* body: JSON ``{"hashes": ["<pdq hex>", "md5:<hex>", …], "videos": [<vPDQ>, …]}`` (each hash read
  like a line of a hash list; each video's vPDQ either its text, ``frame,quality,pdq_hex,timestamp``
  lines as `kizuna hash` writes them, or ThreatExchange's signal form, a list of
  ``pdq_hex,quality,timestamp`` strings), or the bytes of one image, video or other media file (any
  other content type). Each item is one input, ``hashes:N`` or ``videos:N`` counted from 1; a bad item
  (empty, not a string, not a vPDQ) is a result with its ``error``, and the others are answered. Any
  other key is a 400: the options below are query parameters, and one put in the body would otherwise
  be ignored without a word (a match run at the default threshold);
* ``collection`` (repeatable, id or alias): the banks to match; default, every collection of the
  API root the token may read. A bank the token may not see is a 404, exactly like one that does
  not exist, and signals the token may not see are never indexed for it;
* ``threshold``: the PDQ Hamming distance that still matches (0-255, default 31; for a video, between
  two frames);
* ``query_match`` / ``target_match``: for a video, the percentages of its frames and of a banked
  video's frames that must match (vPDQ's two thresholds, default 80 and 0);
* ``across`` (``true``/``false``, default false): also match an image against the frames of banked
  videos and a video's frames against banked images; such a match names the frame (``frame``);
* ``store`` (id or alias): also store the sightings of the matched signals in this collection.

The answer is ``{"results": [...], "sightings": [...]}`` with one result per input as
`kizuna hashes match --json` prints them. Authentication and errors are the TAXII endpoints' own.

`POST /{api_root}/hashes/opinions`: a verdict on a matched signal (hashes/opinions.py), body
``{"collection": "<bank id or alias>", "signal": "<indicator id>", "verdict":
"true-positive|false-positive|disputed", "comment": "…"}``; the answer (201) is ``{"opinion": {…},
"status": {…}}``. A signal the token may not see is the same 404 as one that does not exist.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizuna.core.errors import BadRequest
from kizuna.core.filters import query_values
from kizuna.core.messages import N_, Message
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.hashes.banks import Banks
from kizuna.hashes.matching import MatchRun, Query, hash_query, media_query, queries_from_lines, video_query
from kizuna.hashes.opinions import record_opinion
from kizuna.hashes.signals import DEFAULT_THRESHOLD
from kizuna.hashes.video import QUERY_PERCENT, TARGET_PERCENT, VideoRule
from kizuna.numerals import whole_number
from kizuna.store.base import Collection
from kizuna.taxii.http import endpoint, read_body, taxii_response

_PARAMS = ("collection", "threshold", "query_match", "target_match", "across", "store")
_BODY_KEYS = ("hashes", "videos")
_MAX_HASHES = 10_000


def _threshold(values: list[str]) -> int:
    if not values:
        return DEFAULT_THRESHOLD
    text = values[-1]
    threshold = whole_number(text, 255)
    if threshold is None:
        raise BadRequest(f"threshold {text[:40]!r} is not a whole number from 0 to 255")
    return threshold


def _percent(name: str, values: list[str], default: float) -> float:
    if not values:
        return default
    text = values[-1]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:  # also refuses nan
        raise BadRequest(f"{name} {text[:40]!r} is not a percentage from 0 to 100")
    return value


def _flag(name: str, values: list[str]) -> bool:
    if not values:
        return False
    if values[-1] not in ("true", "false"):
        raise BadRequest(f"{name} {values[-1][:40]!r} is not true or false")
    return values[-1] == "true"


def _queries(body: bytes, content_type: str) -> list[Query]:
    if content_type.startswith(("application/json", "application/taxii+json")):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        unknown = sorted(set(data) - set(_BODY_KEYS)) if isinstance(data, dict) else []
        if unknown:
            name = unknown[0][:40]
            where = f"; {name} is a query parameter (?{name}=…)" if name in _PARAMS else ""
            raise BadRequest(f"unknown field {name!r} in the body ({', '.join(_BODY_KEYS)}){where}")
        hashes = data.get("hashes", []) if isinstance(data, dict) else None
        videos = data.get("videos", []) if isinstance(data, dict) else None
        if not isinstance(hashes, list) or not isinstance(videos, list) or not (hashes or videos):
            raise BadRequest('a JSON body must be {"hashes": ["<hash>", …]} and/or {"videos": [<vPDQ>, …]}')
        if len(hashes) + len(videos) > _MAX_HASHES:
            raise BadRequest(f"at most {_MAX_HASHES} hashes and videos per request")
        # Each item is one input, named by its place in its list counted from 1, as a line in a file is.
        return [*(hash_query(f"hashes:{n}", value) for n, value in enumerate(hashes, start=1)),
                *(video_query(f"videos:{n}", video) for n, video in enumerate(videos, start=1))]
    if not body:
        raise BadRequest("the body is empty: send an image or {\"hashes\": [...]}")
    return [media_query("body", body)]


class HashMatchService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.banks = Banks(node)

    def match(self, principal: Principal, api_root: str, params: dict[str, list[str]], body: bytes,
              content_type: str) -> dict[str, Any]:
        threshold = _threshold(params.get("threshold", []))
        rule = VideoRule(_percent("query_match", params.get("query_match", []), QUERY_PERCENT),
                         _percent("target_match", params.get("target_match", []), TARGET_PERCENT),
                         _flag("across", params.get("across", [])))
        collections = self.banks.visible(principal, api_root, params.get("collection", []))
        target = self.node.writable(principal, api_root, params["store"][-1]) if params.get("store") else None
        queries = _queries(body, content_type)
        run = self._run(principal, collections, threshold, rule)
        results = list(run.results(queries))
        sightings = run.sightings()
        answer: dict[str, Any] = {"results": results, "sightings": sightings}
        if target is not None:
            report = self.node.add_objects(principal, target, sightings) if sightings else None
            answer["stored"] = report.to_taxii() if report is not None else {"success_count": 0}
        return answer

    def match_for_console(self, principal: Principal, collections: list[Collection], text: str,
                          upload: tuple[str, bytes] | None, threshold: int, across: bool) -> list[dict[str, Any]]:
        """The console's form: pasted lines ("line N", said in the reader's language; the API's are
        ``line:N``) and one uploaded file, against ``collections`` (those the token reads), through the same
        shared indexes and visibility check as the API."""
        queries = list(queries_from_lines("line", text, lambda n: Message(N_("line %(num)s"), num=n)))
        if upload is not None:
            queries.append(media_query(upload[0], upload[1]))
        rule = VideoRule(QUERY_PERCENT, TARGET_PERCENT, across)
        return list(self._run(principal, collections, threshold, rule).results(queries))

    def _run(self, principal: Principal, collections: list[Collection], threshold: int, rule: VideoRule) -> MatchRun:
        """A match run over the shared bank indexes, its sightings made by the principal's organisation."""
        return MatchRun(self.banks, principal, collections, threshold, self.node.acting_identity(principal), rule)

    async def handle(self, request: Request, principal: Principal) -> Response:
        api_root = request.path_params["api_root"]
        root = await run_in_threadpool(self.node.api_root, api_root)
        given = request.query_params.multi_items()
        for name, _ in given:
            if name not in _PARAMS:
                raise BadRequest(f"unknown query parameter {name!r} ({', '.join(_PARAMS)})")
        params = query_values(given, repeatable=("collection",))
        body = await read_body(request, root.max_content_length)
        content_type = request.headers.get("content-type", "").lower()
        answer = await run_in_threadpool(self.match, principal, api_root, params, body, content_type)
        return taxii_response(orjson.dumps(answer))


_OPINION_FIELDS = {"collection": True, "signal": True, "verdict": True, "comment": False}  # name -> required


def _opinion_fields(body: bytes) -> dict[str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be {"collection", "signal", "verdict", "comment"}')
    unknown = sorted(set(data) - set(_OPINION_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:40]!r} ({', '.join(_OPINION_FIELDS)})")
    for name, required in _OPINION_FIELDS.items():
        if (required and name not in data) or (name in data and not isinstance(data[name], str)):
            raise BadRequest(f"{name} must be a string" + (" and is required" if required else ""))
    if any("\x00" in data[name] for name in _OPINION_FIELDS if name in data):
        raise BadRequest("a field holds a NUL character, which no collection, signal or verdict contains")
    if not data["collection"] or not data["signal"]:
        raise BadRequest("collection and signal must not be empty")
    return data


class OpinionService:
    def __init__(self, node: Node) -> None:
        self.node = node

    def record(self, principal: Principal, api_root: str, fields: dict[str, str]) -> dict[str, Any]:
        bank = self.node.collection_for(principal, api_root, fields["collection"])
        done = record_opinion(self.node, principal, bank, fields["signal"], fields["verdict"], fields.get("comment"))
        return {"opinion": done.opinion, "status": done.status}

    async def handle(self, request: Request, principal: Principal) -> Response:
        api_root = request.path_params["api_root"]
        root = await run_in_threadpool(self.node.api_root, api_root)
        if request.query_params:
            raise BadRequest(f"unknown query parameter {next(iter(request.query_params))[:40]!r}")
        fields = _opinion_fields(await read_body(request, root.max_content_length))
        answer = await run_in_threadpool(self.record, principal, api_root, fields)
        return taxii_response(orjson.dumps(answer), status=201)


def routes(service: HashMatchService) -> list[Route]:
    """The hash-matching and opinion routes, for `kizuna.app.create_app` to mount next to the detect routes
    (``service`` holds the shared bank indexes, which the console's hash page uses too)."""
    node = service.node
    return [Route("/{api_root}/hashes/match", endpoint(service.handle), methods=["POST"]),
            Route("/{api_root}/hashes/opinions", endpoint(OpinionService(node).handle), methods=["POST"])]
