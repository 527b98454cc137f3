"""The operations room in one process: a node that judges its watchlist as objects arrive."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.node import Node
from kizuna.ops.arrivals import watch_arrivals
from kizuna.ops.assets import add_assets
from kizuna.ops.reading import stix_now
from kizuna.ops.records import Operation
from kizuna.ops.workspace import create_operation
from kizuna.policy.tlp import TlpLevel, oasis_id

AMBER, RED = oasis_id(TlpLevel.AMBER), oasis_id(TlpLevel.RED)


def indicator(value: str, marking: str = AMBER, **extra: Any) -> dict[str, Any]:
    now = stix_now()
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
            "modified": now, "valid_from": now, "pattern_type": "stix", "name": f"seen {value}",
            "pattern": f"[domain-name:value = '{value}']", "object_marking_refs": [marking], **extra}


def sighting(of: str, marking: str = AMBER, **extra: Any) -> dict[str, Any]:
    now = stix_now()
    return {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
            "modified": now, "sighting_of_ref": of, "count": 3, "object_marking_refs": [marking], **extra}


@pytest.fixture
def room(tmp_path: Path, store_url: str) -> Iterator[tuple[Node, Operation, str]]:
    """A node judging as objects arrive, with an operation protecting games2027.example, on each
    backend; yields the node, the operation and a partner's token."""
    node = watch_arrivals(Node.init(tmp_path / "node", store_url, org_name="Host CERT", country="GBR"))
    try:
        node.create_organisation("Games SOC", "JPN")
        today = dt.datetime.now(dt.UTC).date()
        operation, tokens = create_operation(node, "Arrival Cup", str(today), str(today + dt.timedelta(days=3)),
                                             ["Games SOC"])
        add_assets(node, operation, [("domain", "games2027.example")])
        yield node, operation, tokens[0].secret
    finally:
        node.close()


