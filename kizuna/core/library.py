"""The best-practice library: reports, courses of action and notes that carry a topic label, grouped
by topic, each in the reader's language when a STIX ``language-content`` object translates it.

A topic is a label ``topic:<name>`` (STIX labels are an open vocabulary, so partners' tools keep them
as they are); the names are in TOPICS. The text of an object is in its ``lang`` (English when absent);
a ``language-content`` object whose ``object_ref`` is the item carries the other languages, property by
property. Both the items and their translations are read through the principal's viewer, so a hidden
item is not listed and a hidden translation is treated as missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kizuna.core.filters import Filters
from kizuna.core.listing import Budget, Walk, readable_collections, scan
from kizuna.core.node import Node
from kizuna.core.principal import Principal

TOPIC_PREFIX = "topic:"
#: The library's topics, in the order the page shows them.
TOPICS = ("cyber", "counter-terrorism", "aviation-security", "mass-events")
LIBRARY_TYPES = ("report", "course-of-action", "note")
#: How far the walk over one collection goes for the library page.
LIBRARY_BUDGET = Budget(floor=2_000, seconds=0.12)
#: The properties that make an item's title and summary, by type (a note has no name).
_TEXT = {"note": ("abstract", "content")}
_DEFAULT_TEXT = ("name", "description")


@dataclass(frozen=True, slots=True)
class LibraryItem:
    id: str
    type: str
    collection_ref: str
    title: str
    summary: str
    language: str  # the language of title and summary as shown
    translated: bool  # False: no text in the reader's language, shown in ``language`` instead
    modified: str


@dataclass
class Library:
    topics: dict[str, list[LibraryItem]] = field(default_factory=lambda: {topic: [] for topic in TOPICS})
    complete: bool = True  # False: a collection held too much to look through for one page


def topics_of(obj: dict[str, Any]) -> list[str]:
    labels = obj.get("labels", ())
    return [label[len(TOPIC_PREFIX):] for label in labels
            if isinstance(label, str) and label.startswith(TOPIC_PREFIX) and label[len(TOPIC_PREFIX):] in TOPICS]


def text_in(obj: dict[str, Any], translations: dict[str, dict[str, Any]], language: str) -> tuple[str, str, str, bool]:
    """(title, summary, language shown, translated) of a library object for a reader of ``language``."""
    title_key, summary_key = _TEXT.get(obj["type"], _DEFAULT_TEXT)
    original = str(obj.get("lang") or "en")
    if original.split("-")[0] != language:
        wanted = translations.get(language, {})
        if isinstance(wanted.get(title_key), str) or isinstance(wanted.get(summary_key), str):
            title = wanted.get(title_key) or obj.get(title_key) or ""
            return str(title), str(wanted.get(summary_key) or ""), language, True
    title = obj.get(title_key) or obj.get(summary_key, "")[:80] or obj["id"]
    return str(title), str(obj.get(summary_key) or ""), original, original.split("-")[0] == language


def library(node: Node, principal: Principal, language: str) -> Library:
    """Every library item the principal sees in its readable collections, by topic, newest first."""
    shelf = Library()
    for collection in readable_collections(node, principal):
        viewer = node.viewer_for(principal, collection)
        items: dict[str, dict[str, Any]] = {}
        translations: dict[str, dict[str, dict[str, Any]]] = {}  # object id -> language -> properties
        walk = Walk()
        for row, body in scan(node, viewer, Filters(types=(*LIBRARY_TYPES, "language-content")), LIBRARY_BUDGET, walk):
            obj = orjson.loads(body)
            if row.type == "language-content":
                target = obj.get("object_ref")
                for lang, values in (obj.get("contents") or {}).items():
                    if isinstance(target, str) and isinstance(values, dict):
                        translations.setdefault(target, {}).setdefault(str(lang).split("-")[0], {}).update(values)
            elif topics_of(obj):  # the walk gives the latest version the viewer sees
                items[row.stix_id] = obj
        shelf.complete &= walk.complete
        for object_id, obj in items.items():
            title, summary, shown_in, translated = text_in(obj, translations.get(object_id, {}), language)
            item = LibraryItem(object_id, obj["type"], collection.alias or collection.id, title, summary,
                               shown_in, translated, str(obj.get("modified", "")))
            for topic in topics_of(obj):
                shelf.topics[topic].append(item)
    for listed in shelf.topics.values():
        listed.sort(key=lambda item: item.modified, reverse=True)
    return shelf
