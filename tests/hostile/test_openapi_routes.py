"""The OpenAPI document names every route of the assembled app, and is served as it is written.

The routes are read from ``kizuna.app.create_app`` itself (mounts flattened), so a route added to
any room without an entry in ``kizuna/taxii/openapi.py`` fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import requests
from starlette.routing import BaseRoute, Mount, Route

import kizuna
from kizuna.app import create_app
from kizuna.core.node import Node
from kizuna.taxii.openapi import openapi_document
from tests.conftest import kizuna_json, start_server

_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _flatten(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            inner = list(route.routes)
            if inner:
                yield from _flatten(inner, prefix + route.path)
            else:  # an app mounted whole (static files): every path below it
                yield prefix + route.path + "/{path}", {"GET"}
        elif isinstance(route, Route):
            methods = set(route.methods or {"GET"}) - {"HEAD"}
            yield _CONVERTER.sub(r"{\1}", prefix + route.path), methods


def test_every_route_and_method_of_the_app_is_documented(tmp_path: Path) -> None:
    kizuna_json(tmp_path / "n", "init", "--org-name", "Home", "--country", "GBR")
    app = create_app(Node.open(tmp_path / "n"))
    paths = openapi_document()["paths"]
    missing = []
    for path, methods in _flatten(list(app.routes)):
        documented = {m.upper() for m in paths.get(path, {})}
        if not methods <= documented:
            missing.append(f"{sorted(methods - documented)} {path}")
    assert not missing, "routes without an OpenAPI entry: " + ", ".join(missing)
    # And the document names nothing the app does not serve.
    served = {path for path, _ in _flatten(list(app.routes))}
    assert set(paths) - served == set()


def test_the_document_is_served_without_a_token_and_is_valid_openapi_3_1(tmp_path: Path) -> None:
    from openapi_spec_validator import validate

    kizuna_json(tmp_path / "n", "init", "--org-name", "Home", "--country", "GBR")
    server = start_server(tmp_path / "n", sync=False)
    try:
        response = requests.get(server.base + "/openapi.json", timeout=10)
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == openapi_document()
    assert served["openapi"] == "3.1.0"
    # The document's own version is the release's (it said "2.1", the TAXII version, whatever the release).
    assert served["info"]["version"] == kizuna.__version__ and "TAXII 2.1" in served["info"]["description"]
    validate(served)
    error = served["components"]["schemas"]["Error"]
    assert error["required"] == ["title"] and "http_status" in error["properties"]
