"""The node's HTTP contract as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

The document is data written here by hand, not derived from the routes: it is the promise made to
partners and to schemathesis, and ``tests/taxii/test_openapi.py`` walks the assembled app so that a
route without an entry here fails CI. Schemas follow TAXII 2.1 (§3.6 error, §4.1 discovery, §4.2 API
root, §4.3 status, §5.1-5.2 collections, §5.3 manifest, §5.4-5.8 envelopes and versions); the
detection, federation, feed and health endpoints are Kizuna's own. The console's pages are listed
too (HTML for browsers, signed in with a session cookie) so that the document names every route.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizuna import __version__
from kizuna.taxii.media import TAXII_MEDIA_TYPE, TERMS_HEADER

_JSON = "application/json"
_HTML = "text/html"
_TEXT = "text/plain"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _taxii(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {TAXII_MEDIA_TYPE: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_ERRORS = _taxii(_ref("Error"), "A TAXII error object (§3.6): 400, 401, 403, 404, 405, 406, 413, 415, 422 or 500")
# A real day of a year from 1 to 9999 (the server parses dates with Python's calendar: 0510-11-31 is no day,
# nor is 2100-02-29), so that every timestamp the document allows is one the server takes.
_YEAR = r"(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})"
_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = (rf"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
         rf"|{_LEAP_YEAR}-02-29)")
_TIMESTAMP = {"type": "string", "pattern": rf"^{_DATE}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{{1,6}})?Z$"}
# STIX type names as the server reads them (stix/validation.py, core/filters.py): letters and digits with single
# hyphens inside, 3 to 250 characters; in an id, at least 2.
_TYPE_NAME = r"[a-z0-9](?:-?[a-z0-9])+"
_STIX_ID = rf"{_TYPE_NAME}--[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}"
_POSITION = {"type": "integer", "minimum": 0, "maximum": 9_223_372_036_854_775_807}
_DATE_HEADERS = {
    "X-TAXII-Date-Added-First": {"description": "date_added of the first object on the page (§3.4.2)",
                                 "schema": _TIMESTAMP},
    "X-TAXII-Date-Added-Last": {"description": "date_added of the last object on the page; resume from it",
                                "schema": _TIMESTAMP},
}
_OBJECTS_HEADERS = {
    **_DATE_HEADERS,
    TERMS_HEADER: {"description": "a digest of the terms this token reads under; absent for the node's own "
                                  "organisation. A pulling node that sees it change reads the collection again",
                   "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
}


#: Any text without a NUL character, which no name, id or value of the node holds (taxii/http.RefuseNul refuses it).
_NO_NUL = "^[^\\u0000]*$"


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string", "pattern": _NO_NUL}}


def _path(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema = {"type": "string", "pattern": f"^{pattern}$" if pattern else _NO_NUL}
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


_API_ROOT = _path("api_root", "the API root's name, e.g. main")
_COLLECTION = _path("collection", "a collection's id or alias")
_OBJECT_ID = _path("object_id", "a STIX identifier, type--UUID", _STIX_ID)
_PAGING = [
    _query("added_after", "only objects added after this instant (§3.4.2)", _TIMESTAMP),
    _query("limit", "at most this many records on a page", {"type": "integer", "minimum": 1, "maximum": 10**9}),
    _query("next", "the opaque cursor of the previous page's `next`",
           {"type": "string", "minLength": 1, "pattern": _NO_NUL}),
]


def _list(name: str, description: str, item: dict[str, Any]) -> dict[str, Any]:
    """A query parameter holding a comma-separated list in which no value repeats (core/filters.py refuses one)."""
    return {**_query(name, description, {"type": "array", "minItems": 1, "uniqueItems": True, "items": item}),
            "style": "form", "explode": False}


_MATCH = {
    "id": _list("match[id]", "comma-separated STIX ids, none repeated",
                {"type": "string", "pattern": f"^{_STIX_ID}$"}),
    "type": _list("match[type]", "comma-separated STIX types, none repeated",
                  {"type": "string", "pattern": f"^{_TYPE_NAME}$", "minLength": 3, "maxLength": 250}),
    "version": _query("match[version]", "last, first, all or comma-separated timestamps",
                      {"anyOf": [{"enum": ["last", "first", "all"]}, _TIMESTAMP]}),
    "spec_version": _query("match[spec_version]", "comma-separated spec versions, e.g. 2.1",
                           {"type": "string", "enum": ["2.0", "2.1", "2.0,2.1"]}),
}


def _operation(summary: str, tag: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None,
               secured: bool = True, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if not secured:
        operation["security"] = []
    if body is not None:
        operation["requestBody"] = body
    return operation


def _api(summary: str, tag: str, schema: dict[str, Any], parameters: list[dict[str, Any]], status: str = "200",
         headers: dict[str, Any] | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {status: _taxii(schema, summary, headers), "default": _ERRORS}
    return _operation(summary, tag, responses, parameters, body=body)


def _page(name: str, method: str = "get", form: bool = False, *params: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "an HTML page", "content": {_HTML: {"schema": {"type": "string"}}}},
        "303": {"description": "redirect after a form or to sign in"},
        "default": {"description": "an HTML error page", "content": {_HTML: {"schema": {"type": "string"}}}},
    }
    body = {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}} if form else None
    return {method: _operation(name, "console", responses, list(params), secured=False, body=body)}


def _upload_page(name: str) -> dict[str, Any]:
    post = _page(name, "post", True)
    post["post"]["requestBody"]["content"] = {"multipart/form-data": {"schema": {"type": "object"}}}
    return post


# Objects that fail validation do not fail the request: each is a failure in the status (§5.5).
_ENVELOPE_BODY = {"required": True, "content": {TAXII_MEDIA_TYPE: {"schema": {
    "type": "object", "properties": {"objects": {"type": "array", "items": {}}}}}}}
_DETECT_BODY = {"required": True, "content": {
    _JSON: {"schema": {"description": "STIX observed-data (bundle, list or envelope) or JSON log lines"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    _TEXT: {"schema": {"type": "string", "description": "Zeek TSV with its header, or JSON lines"}},
}}

_HASH_BODY = {"required": True, "content": {
    # The options (threshold, …) are query parameters; any other key in the body is refused.
    _JSON: {"schema": {"type": "object", "anyOf": [{"required": ["hashes"]}, {"required": ["videos"]}],
                       "additionalProperties": False, "properties": {
        "hashes": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {
            "type": "string", "description": "PDQ hex, md5:<hex> or sha256:<hex>, as a line of a hash list"}},
        "videos": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {
            "description": "a video's vPDQ: its text (frame,quality,pdq_hex,timestamp lines) or ThreatExchange's "
                           "signal form (a list of pdq_hex,quality,timestamp strings)",
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1,
                                            "description": "one image, video or other media file, hashed on arrival "
                                                           "(an empty body is refused)"}},
}}
_OPINION_BODY = {"required": True, "content": {_JSON: {"schema": {
    "type": "object", "required": ["collection", "signal", "verdict"], "additionalProperties": False, "properties": {
        "collection": {"type": "string", "minLength": 1, "pattern": _NO_NUL,
                       "description": "the bank holding the signal (id or alias)"},
        "signal": {"type": "string", "minLength": 1, "pattern": _NO_NUL, "description": "the signal's indicator id"},
        "verdict": {"type": "string", "enum": ["true-positive", "false-positive", "disputed"]},
        "comment": {"type": "string", "maxLength": 2000, "pattern": _NO_NUL}}}}}}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["title"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "error_id": {"type": "string"},
        "error_code": {"type": "string"}, "http_status": {"type": "string"}, "external_details": {"type": "string"},
        "details": {"type": "object"}}},
    "Discovery": {"type": "object", "required": ["title"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "contact": {"type": "string"},
        "default": {"type": "string"}, "api_roots": {"type": "array", "items": {"type": "string"}}}},
    "ApiRoot": {"type": "object", "required": ["title", "versions", "max_content_length"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "max_content_length": {"type": "integer", "minimum": 0}}},
    "Status": {"type": "object", "required": ["id", "status", "total_count", "success_count", "failure_count",
                                              "pending_count"], "properties": {
        "id": {"type": "string"}, "status": {"enum": ["complete", "pending"]}, "request_timestamp": _TIMESTAMP,
        "total_count": {"type": "integer"}, "success_count": {"type": "integer"},
        "failure_count": {"type": "integer"}, "pending_count": {"type": "integer"},
        "successes": {"type": "array", "items": _ref("StatusDetail")},
        "failures": {"type": "array", "items": _ref("StatusDetail")},
        "pendings": {"type": "array", "items": _ref("StatusDetail")}}},
    "StatusDetail": {"type": "object", "required": ["id", "version"], "properties": {
        "id": {"type": "string"}, "version": {"type": "string"}, "message": {"type": "string"}}},
    "Collection": {"type": "object", "required": ["id", "title", "can_read", "can_write"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "alias": {"type": "string"}, "can_read": {"type": "boolean"}, "can_write": {"type": "boolean"},
        "media_types": {"type": "array", "items": {"type": "string"}}}},
    "Collections": {"type": "object", "properties": {
        "collections": {"type": "array", "items": _ref("Collection")}}},
    "Manifest": {"type": "object", "properties": {
        "more": {"type": "boolean"}, "next": {"type": "string"},
        "objects": {"type": "array", "items": {"type": "object", "required": ["id", "date_added", "version"],
                                               "properties": {"id": {"type": "string"}, "date_added": _TIMESTAMP,
                                                              "version": {"type": "string"},
                                                              "media_type": {"type": "string"}}}}}},
    "StixObject": {"type": "object", "required": ["type", "id"], "properties": {
        "type": {"type": "string"}, "id": {"type": "string"}, "spec_version": {"type": "string"}}},
    "Envelope": {"type": "object", "properties": {
        "more": {"type": "boolean"}, "next": {"type": "string"},
        "objects": {"type": "array", "items": _ref("StixObject")}}},
    "Versions": {"type": "object", "properties": {
        "more": {"type": "boolean"}, "next": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}}}},
    "Detection": {"type": "object", "description": "hits, sightings and counts (docs/detection.md)"},
    "HashMatches": {"type": "object", "required": ["results", "sightings"], "properties": {
        # one item per input: {"input", "hash", "matches": […]} or, for an unusable input, {"input", "error"}
        "results": {"type": "array", "items": {"type": "object", "required": ["input"]}},
        "sightings": {"type": "array", "items": _ref("StixObject")},
        "stored": {"type": "object"}}},
    "HashOpinion": {"type": "object", "required": ["opinion", "status"], "properties": {
        "opinion": _ref("StixObject"), "status": _ref("Status")}},
    "Tombstones": {"type": "object", "required": ["tombstones", "deleted_last", "withdrawn_last", "more"],
                   "properties": {
                       "tombstones": {"type": "array", "items": {"type": "object", "required": ["id", "reason"]}},
                       "deleted_last": {"type": "integer"}, "withdrawn_last": {"type": "integer"},
                       "more": {"type": "boolean"}}},
    "Partners": {"type": "object", "required": ["partners"], "properties": {
        "partners": {"type": "array", "items": {"type": "object"}}}},
}

_COLL = "/{api_root}/collections/{collection}"
_PATHS: dict[str, Any] = {
    "/taxii2/": {"get": _api("Server discovery (§4.1)", "taxii", _ref("Discovery"), [])},
    "/{api_root}/": {"get": _api("API root information (§4.2)", "taxii", _ref("ApiRoot"), [_API_ROOT])},
    "/{api_root}/status/{status_id}/": {"get": _api(
        "Status of an add request (§4.3)", "taxii", _ref("Status"),
        [_API_ROOT, _path("status_id", "the status id a POST returned")])},
    "/{api_root}/collections/": {"get": _api("Collections this token may see (§5.1)", "taxii",
                                             _ref("Collections"), [_API_ROOT])},
    _COLL + "/": {"get": _api("One collection (§5.2)", "taxii", _ref("Collection"), [_API_ROOT, _COLLECTION])},
    _COLL + "/manifest/": {"get": _api(
        "Manifest of the objects this token may see (§5.3)", "taxii", _ref("Manifest"),
        [_API_ROOT, _COLLECTION, *_PAGING, *_MATCH.values()], headers=_DATE_HEADERS)},
    _COLL + "/objects/": {
        "get": _api("Objects this token may see (§5.4)", "taxii", _ref("Envelope"),
                    [_API_ROOT, _COLLECTION, *_PAGING, *_MATCH.values()], headers=_OBJECTS_HEADERS),
        "post": _api("Add objects (§5.5); the status is complete when answered", "taxii", _ref("Status"),
                     [_API_ROOT, _COLLECTION], status="202", body=_ENVELOPE_BODY),
    },
    _COLL + "/objects/{object_id}/": {
        "get": _api("Versions of one object (§5.6)", "taxii", _ref("Envelope"),
                    [_API_ROOT, _COLLECTION, _OBJECT_ID, *_PAGING, _MATCH["version"], _MATCH["spec_version"]],
                    headers=_DATE_HEADERS),
        "delete": _api("Delete an object or some of its versions (§5.7)", "taxii", {},
                       [_API_ROOT, _COLLECTION, _OBJECT_ID, _MATCH["version"], _MATCH["spec_version"]]),
    },
    _COLL + "/objects/{object_id}/versions/": {"get": _api(
        "Version timestamps of one object (§5.8)", "taxii", _ref("Versions"),
        [_API_ROOT, _COLLECTION, _OBJECT_ID, *_PAGING, _MATCH["spec_version"]], headers=_DATE_HEADERS)},
    "/{api_root}/detect/observations/": {"post": _api(
        "Match observations or log lines against the indicators this token may read", "detect", _ref("Detection"),
        [_API_ROOT, _query("format", "auto, stix, zeek, suricata, ecs or a mapping's name",
                           {"type": "string", "enum": ["auto", "stix", "zeek", "suricata", "ecs"]}),
         _query("collection", "a collection (id or alias) whose indicators are matched; repeatable",
                {"type": "string", "minLength": 1, "pattern": _NO_NUL}),
         _query("store", "store the sightings in this collection",
                {"type": "string", "minLength": 1, "pattern": _NO_NUL})],
        body=_DETECT_BODY)},
    "/{api_root}/hashes/match": {"post": _api(
        "Match images, videos or hashes against the hash banks this token may read (docs/hashes.md)", "hashes",
        _ref("HashMatches"),
        [_API_ROOT, _query("collection", "a bank (collection id or alias) to match; repeatable",
                           {"type": "string", "minLength": 1, "pattern": _NO_NUL}),
         _query("threshold", "PDQ Hamming distance that still matches, for videos between two frames (default 31)",
                {"type": "integer", "minimum": 0, "maximum": 255}),
         _query("query_match", "vPDQ: percentage of the video's frames that must match a banked video's (default 80)",
                {"type": "number", "minimum": 0, "maximum": 100}),
         _query("target_match", "vPDQ: percentage of the banked video's frames that must match (default 0)",
                {"type": "number", "minimum": 0, "maximum": 100}),
         _query("across", "also match images against banked videos' frames and videos' frames against banked "
                "images (default false)", {"type": "string", "enum": ["true", "false"]}),
         _query("store", "store the sightings in this collection",
                {"type": "string", "minLength": 1, "pattern": _NO_NUL})],
        body=_HASH_BODY)},
    "/{api_root}/hashes/opinions": {"post": _api(
        "Record a verdict on a hash signal as a STIX opinion in its bank (docs/hashes.md)", "hashes",
        _ref("HashOpinion"), [_API_ROOT], status="201", body=_OPINION_BODY)},
    _COLL + "/tombstones/": {"get": _api(
        "What left the collection for this token (Kizuna federation)", "federation", _ref("Tombstones"),
        [_API_ROOT, _COLLECTION,
         _query("deleted_after", "µs position from the previous page", _POSITION),
         _query("withdrawn_after", "µs position from the previous page", _POSITION),
         _query("limit", "page size (at most 10000)", {"type": "integer", "minimum": 1, "maximum": 10_000})])},
    "/{api_root}/federation/partners/": {"get": _api(
        "Partner status, for the node's own organisation", "federation", _ref("Partners"), [_API_ROOT])},
    "/feeds/{file}": {"get": _operation(
        "A named feed (name.ext) built from the caller's view; 304 when unchanged", "feeds",
        {"200": {"description": "the feed", "content": {_TEXT: {"schema": {"type": "string"}},
                                                          _JSON: {"schema": {}}, "text/csv": {"schema": {}}}},
         "304": {"description": "unchanged since If-None-Match / If-Modified-Since"},
         "default": _ERRORS},
        [_path("file", "the feed's name and extension, e.g. blocklist.txt")])},
    "/feeds/": {"get": _operation(
        "Names no feed: answered as a feed that does not exist (401 without a token, else 404)", "feeds",
        {"default": _ERRORS})},
    "/healthz": {"get": _operation("The process answers", "health", {"200": {
        "description": "alive", "content": {_JSON: {"schema": {"type": "object"}}}}}, secured=False)},
    "/readyz": {"get": _operation("Store, migrations and sync worker are ready", "health", {
        "200": {"description": "ready", "content": {_JSON: {"schema": {"type": "object"}}}},
        "503": {"description": "not ready, naming what failed", "content": {_JSON: {"schema": {"type": "object"}}}},
    }, secured=False)},
    "/metrics": {"get": _operation(
        "Prometheus exposition: open to loopback clients, or to tokens with the metrics right when "
        "[metrics] access = \"token\"", "health", {
            "200": {"description": "metrics", "content": {_TEXT: {"schema": {"type": "string"}}}},
            "default": _ERRORS}, secured=False)},
    "/openapi.json": {"get": _operation("This document", "health", {"200": {
        "description": "OpenAPI 3.1", "content": {_JSON: {"schema": {"type": "object"}}}}}, secured=False)},
    "/": {"get": _operation("Redirect to the console", "console", {"307": {"description": "to /console/"}},
                            secured=False)},
    "/favicon.ico": {"get": _operation(
        "No icon here (console pages name their own): 404, not a redirect to a TAXII API root", "console",
        {"404": {"description": "absent"}}, secured=False)},
    "/console/": _page("Dashboard"),
    "/console/sign-in": {**_page("Sign-in form"), **_page("Sign in with a token", "post", form=True)},
    "/console/sign-out": _page("Sign out", "post", form=True),
    "/console/language": _page("Choose English or Japanese", "post", form=True),
    "/console/browse": _page("Browse objects"),
    "/console/search": _page("Full-text search"),
    "/console/share": {**_page("Share form"), **_page("Share a draft", "post", form=True)},
    "/console/share/check": _page("Check a pattern while typing"),
    "/console/objects/{object_id}": _page("One object", "get", False, _OBJECT_ID),
    "/console/objects/{object_id}/stix.json": _page("Download one object as STIX", "get", False, _OBJECT_ID),
    "/console/objects/{object_id}/graph.json": _page("The object's two-hop relationship graph (JSON)", "get", False,
                                                     _OBJECT_ID),
    "/console/library": _page("Best-practice library"),
    "/console/hashes": {**_page("Hash matching form"),
                        **_upload_page("Match pasted hashes or an uploaded image or video against the readable banks")},
    "/console/hashes/opinion": _page("Record a verdict on a matched signal", "post", form=True),
    "/console/operations": _page("Mass-event operations the token takes part in"),
    "/console/operations/{slug}": _page("One operation: partners, collections, alerts, incidents, shift report",
                                        "get", False, _path("slug", "an operation's short name")),
    # operator pages (docs/console-operators.md): a 404 page for any token without the operator right
    "/console/partners": _page("Partners and their sync health"),
    "/console/agreements": _page("Partner agreements"),
    "/console/agreements/{agreement_id}": _page("One agreement and its versions", "get", False,
                                                 _path("agreement_id", "an agreement's id")),
    "/console/tokens": {**_page("Tokens"), **_page("Create a token (its secret is shown once)", "post", form=True)},
    "/console/tokens/{token_id}/revoke": {
        **_page("Confirm revoking a token", "get", False, _path("token_id", "a token's id")),
        **_page("Revoke a token", "post", True, _path("token_id", "a token's id"))},
    "/console/audit": _page("The audit log and its chain's verification"),
    "/console/import": {**_page("Import form"), **_upload_page("Import an uploaded file and show its report")},
    "/console/static/{path}": _page("Stylesheets, scripts and images of the console", "get", False,
                                     _path("path", "a file under the console's static folder")),
    "/console/{rest}": _page("Any other console path: a not-found page", "get", False,
                               _path("rest", "any path")),
}


def openapi_document() -> dict[str, Any]:
    """The whole document; a fresh dict each call, so a caller may change its copy."""
    return orjson.loads(orjson.dumps({
        "openapi": "3.1.0",
        # info.version is the version of this API's document, so the Kizuna release; the TAXII version it
        # speaks is in the description and in every media type.
        "info": {"title": "Kizuna node", "version": __version__,
                 "description": "TAXII 2.1 with Kizuna's detection, federation, feed and health endpoints. "
                                "Every API error is a TAXII error object."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"basic": []}],
        "tags": [{"name": n} for n in ("taxii", "detect", "hashes", "federation", "feeds", "health", "console")],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic",
                                          "description": "any user name; the password is the token"}},
        },
    }))


def openapi_routes() -> list[Route]:
    """``GET /openapi.json``: unauthenticated, as the contract is public and names no data."""
    body = orjson.dumps(openapi_document())

    async def serve(request: Request) -> Response:
        return Response(body, media_type=_JSON)

    return [Route("/openapi.json", serve, methods=["GET"])]
