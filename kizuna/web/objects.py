"""The object page (every property, markings, versions with their differences, relationships,
sightings, the STIX JSON) and the JSON download. Read through ``core/object_view``, so an object the
reader may not see is the same 404 page as one that does not exist."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

from kizuna.core.graph import relationship_graph
from kizuna.core.object_view import object_view
from kizuna.web.page import Visit

#: Properties shown in the page's header rather than in the property table.
_HEADER = ("type", "id", "spec_version")


def granular_by_property(obj: dict[str, Any]) -> dict[str, list[str]]:
    """Marking ids of granular markings per top-level property they cover (``description``,
    ``labels.[0]`` -> ``labels``), so each is shown beside the property it restricts."""
    found: dict[str, list[str]] = {}
    for granular in obj.get("granular_markings", ()):
        ref = granular.get("marking_ref") or granular.get("lang")
        for selector in granular.get("selectors", ()):
            top = str(selector).split(".")[0]
            if ref and ref not in found.setdefault(top, []):
                found[top].append(ref)
    return found


def differences(older: dict[str, Any], newer: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """What changed between two versions, property by property: (property, kind, old, new)."""
    changed: list[tuple[str, str, Any, Any]] = []
    for key in sorted(set(older) | set(newer)):
        if key not in older:
            changed.append((key, "added", None, newer[key]))
        elif key not in newer:
            changed.append((key, "removed", older[key], None))
        elif older[key] != newer[key]:
            changed.append((key, "changed", older[key], newer[key]))
    return changed


def shown(value: Any) -> str:
    """A property value as text: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def object_page(visit: Visit) -> Response:
    object_id = visit.request.path_params["object_id"]
    view = object_view(visit.node, visit.principal, object_id, visit.request.query_params.get("collection"))
    latest = view.latest
    history = [
        (row, obj, differences(view.versions[index - 1][1], obj) if index else [])
        for index, (row, obj) in enumerate(view.versions)
    ]
    properties = [(key, shown(value)) for key, value in latest.items() if key not in _HEADER]
    return visit.render(
        "object.html", view=view, obj=latest, properties=properties, granular=granular_by_property(latest),
        history=list(reversed(history)), shown=shown,
        stix_json=orjson.dumps(latest, option=orjson.OPT_INDENT_2).decode(),
        collection_ref=view.collection.alias or view.collection.id,
    )


def download(visit: Visit) -> Response:
    object_id = visit.request.path_params["object_id"]
    view = object_view(visit.node, visit.principal, object_id, visit.request.query_params.get("collection"))
    body = orjson.dumps(view.latest, option=orjson.OPT_INDENT_2)
    filename = object_id.replace('"', "") + ".json"
    return Response(body, media_type="application/stix+json;version=2.1",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def graph(visit: Visit) -> Response:
    """The two-hop relationship graph the page's script draws, as JSON (core/graph.py decides what is in it)."""
    object_id = visit.request.path_params["object_id"]
    drawn = relationship_graph(visit.node, visit.principal, object_id, visit.request.query_params.get("collection"))
    return JSONResponse(drawn.as_json())
