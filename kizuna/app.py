"""The node's ASGI application, assembled from the routes of each room.

TAXII 2.1 (`kizuna.taxii`), the detection API (`kizuna.detect.api`) and the Kizuna-to-Kizuna
federation extensions (`kizuna.federation.api`) each export their routes; this module is the only
place that knows all of them, so no room imports another's HTTP layer.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from kizuna.config import resolve_data_dir
from kizuna.core.node import Node
from kizuna.detect.api import routes as detect_routes
from kizuna.federation.api import routes as federation_routes
from kizuna.taxii.http import http_error, server_error
from kizuna.taxii.routes import routes as taxii_routes


def create_app(node: Node) -> Starlette:
    """The whole HTTP API of ``node``; every response, errors included, is TAXII JSON."""
    app = Starlette(
        routes=[*taxii_routes(node), *detect_routes(node), *federation_routes(node)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.node = node
    return app


def app_from_environment() -> Starlette:
    """The app for ``uvicorn --factory`` workers: the node named by ``KIZUNA_DATA``."""
    return create_app(Node.open(resolve_data_dir(os.environ.get("KIZUNA_DATA"))))
