"""The demo node: real public STIX content (ATT&CK for ICS, the OASIS examples) loaded into a node."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, cast

from kizuna.config import CONFIG_NAME
from kizuna.core.node import Node

DEMO_CONTENT = (
    ("attack-ics", "MITRE ATT&CK for ICS v18.1", "ics-attack-18.1.json.gz",
     "© 2025 The MITRE Corporation; reproduced with permission (see ATTRIBUTION.txt)"),
    ("oasis-examples", "OASIS STIX 2.1 examples", "oasis-examples.json.gz",
     "Copyright (c) 2016 OASIS Open; BSD-3-Clause"),
)


def load_demo(data_dir: Path) -> dict[str, Any]:
    """Create (or reuse) the demo node in ``data_dir`` and return how to reach it."""
    from kizuna.stix.bundle_stream import iter_bundle_objects

    if (data_dir / CONFIG_NAME).exists():
        node = Node.open(data_dir)
    else:
        node = Node.init(data_dir, org_name="Kizuna demo node", country="GBR", title="Kizuna demo node")
    loaded: list[dict[str, Any]] = []
    for alias, title, filename, credit in DEMO_CONTENT:
        existing = node.store.get_collection("main", alias)
        collection = existing or node.create_collection(title, "main", credit, alias)
        if existing is None:
            source = resources.files(__package__).joinpath(filename)
            with source.open("rb") as raw, gzip.open(raw) as stream:
                report = node.import_objects(
                    collection, (obj for _, obj in iter_bundle_objects(cast(BinaryIO, stream), filename))
                )
            if report.failures:
                raise ValueError(f"{filename}: {report.failures[0]['message']}")
        loaded.append({"id": collection.id, "alias": alias, "title": title,
                       "objects": node.store.collection_stats(collection.pk)[0]})
    refs = [str(c["id"]) for c in loaded]
    # A token of the node's own organisation: the demo shows everything the node holds.
    home = node.home_organisation_id or ""
    token_id, token = node.create_token(home, read=refs, write=refs, label="demo")
    node.close()
    return {"data_dir": str(data_dir), "collections": loaded, "token_id": token_id, "token": token}
