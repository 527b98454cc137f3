"""The demo node: real public STIX content (ATT&CK for ICS, the OASIS examples) loaded into a node."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from kizuna.config import CONFIG_NAME
from kizuna.core.node import Node
from kizuna.core.operators import set_operator_right

#: Store setting that marks a node created by ``kizuna demo`` (the only kind it loads into unasked).
DEMO_SETTING = "demo_node"

DEMO_CONTENT = (
    ("attack-ics", "MITRE ATT&CK for ICS v18.1", "ics-attack-18.1.json.gz",
     "© 2025 The MITRE Corporation; reproduced with permission (see ATTRIBUTION.txt)"),
    ("oasis-examples", "OASIS STIX 2.1 examples", "oasis-examples.json.gz",
     "Copyright (c) 2016 OASIS Open; BSD-3-Clause"),
    ("library", "Best-practice library", "library.json",
     "Written for the Kizuna demo, in English and Japanese (language-content); Apache-2.0"),
)


class NotADemoNode(Exception):
    """The directory holds something else than a demo node; loading demo content needs --force."""


#: An extra scenario played in the demo node (``kizuna demo --games``): it returns what to print, with
#: ``collections`` (ids the demo token also reads and writes). Rooms above this one hand it over.
Scenario = Callable[[Node], dict[str, Any]]


def load_demo(data_dir: Path, force: bool = False, scenario: Scenario | None = None) -> dict[str, Any]:
    """Create (or reuse) the demo node in ``data_dir`` and return how to reach it.

    A node that ``kizuna demo`` did not create, or a directory holding other files, is left alone
    unless ``force``: demo collections and an all-seeing token do not belong in a real node.
    """
    from kizuna.stix.bundle_stream import iter_bundle_objects

    if (data_dir / CONFIG_NAME).exists():
        node = Node.open(data_dir)
        if node.store.get_setting(DEMO_SETTING) is None and not force:
            node.close()
            raise NotADemoNode(f"{data_dir} holds a Kizuna node that is not a demo node; "
                               "use another --data directory, or --force to load the demo content into it")
    else:
        if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())) and not force:
            raise NotADemoNode(f"{data_dir} is not an empty directory; use another --data directory, "
                               "or --force to create the demo node in it")
        node = Node.init(data_dir, org_name="Kizuna demo node", country="GBR", title="Kizuna demo node")
        node.store.set_setting(DEMO_SETTING, "1")
    loaded: list[dict[str, Any]] = []
    for alias, title, filename, credit in DEMO_CONTENT:
        existing = node.store.get_collection("main", alias)
        collection = existing or node.create_collection(title, "main", credit, alias)
        counts_key = f"demo_counts:{alias}"
        if existing is None:
            source = resources.files(__package__).joinpath(filename)
            with source.open("rb") as raw, (gzip.open(raw) if filename.endswith(".gz") else raw) as stream:
                report = node.import_objects(
                    collection, (obj for _, obj in iter_bundle_objects(cast(BinaryIO, stream), filename))
                )
            if report.failures:
                raise ValueError(f"{filename}: {report.failures[0]['message']}")
            # Remembered, so that a later run reports the same split without reading the file again.
            node.store.set_setting(counts_key, orjson.dumps({
                "read": report.total, "from_source": report.success_count - report.duplicate_count,
                "added_by_node": report.node_added,
            }).decode())
        counts = orjson.loads(node.store.get_setting(counts_key) or "{}")
        loaded.append({"id": collection.id, "alias": alias, "title": title,
                       "objects": node.store.collection_stats(collection.pk)[0],
                       "read": counts.get("read"), "from_source": counts.get("from_source"),
                       "added_by_node": counts.get("added_by_node"), "loaded_now": existing is None})
    played = scenario(node) if scenario is not None else None
    refs = [str(c["id"]) for c in loaded] + (list(played["collections"]) if played else [])
    # A token of the node's own organisation: the demo shows everything the node holds.
    home = node.home_organisation_id or ""
    token_id, token = node.create_token(home, read=refs, write=refs, label="demo")
    # The demo's newcomer is also its operator: the console's operator pages are there to click through.
    set_operator_right(node, token_id, True)
    node.close()
    return {"data_dir": str(data_dir), "collections": loaded, "token_id": token_id, "token": token,
            **({"scenario": played} if played else {})}
