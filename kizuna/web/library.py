"""The best-practice library page: reports, courses of action and notes by topic, in the reader's
language where a ``language-content`` object translates them (core/library.py decides what is shown)."""

from __future__ import annotations

from typing import Final

from starlette.responses import Response

from kizuna.core.library import library
from kizuna.core.vocab import N_
from kizuna.web.page import Visit

#: Headings of the topics (the label is ``topic:<key>``, see docs/library.md).
TOPIC_NAMES: Final = {
    "cyber": N_("Cyber security"),
    "counter-terrorism": N_("Counter-terrorism"),
    "aviation-security": N_("Aviation security"),
    "mass-events": N_("Mass events"),
}
#: What the page says under an item shown in another language than the reader's: (reader's, shown).
MISSING: Final = {
    ("ja", "en"): N_("No Japanese translation yet; shown in English."),
    ("en", "ja"): N_("No English translation yet; shown in Japanese."),
}
OTHER_MISSING: Final = N_("Not yet translated into your language; shown in its original language.")


def library_page(visit: Visit) -> Response:
    shelf = library(visit.node, visit.principal, visit.language)
    topics = [(key, visit.gettext(TOPIC_NAMES[key]), items) for key, items in shelf.topics.items()]
    return visit.render("library.html", topics=topics, complete=shelf.complete,
                        missing=lambda shown_in: visit.gettext(MISSING.get((visit.language, shown_in), OTHER_MISSING)))
