"""Rendering console pages: one Jinja2 environment per language, with gettext (Babel catalogs)
installed, autoescaping on, and the filters templates use for dates, numbers and TLP badges.

An environment per language, not one with translations swapped per request, because requests of
both languages are rendered at once in the server's threads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from kizuna.core.messages import Message
from kizuna.core.vocab import TYPE_NAMES
from kizuna.policy.releasability import WELL_KNOWN_CREATORS
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, TlpLevel
from kizuna.stix.timestamps import now_micros, parse_timestamp
from kizuna.web.i18n import LANGUAGE_NAMES, LANGUAGES, number, translations, when

TEMPLATES = Path(__file__).parent / "templates"
#: CSS class of each TLP 2.0 badge (console.css gives FIRST's colours: coloured text on black).
_TLP_CLASS = {
    TlpLevel.CLEAR: "tlp-clear", TlpLevel.GREEN: "tlp-green", TlpLevel.AMBER: "tlp-amber",
    TlpLevel.AMBER_STRICT: "tlp-amber-strict", TlpLevel.RED: "tlp-red",
}


def tlp_badge(level: TlpLevel | str | None) -> Markup:
    """A TLP label as a badge; the label itself is never translated (FIRST requires it)."""
    if level is None:
        return Markup("")
    if isinstance(level, str):  # a marking id, or a label such as TLP:GREEN (search hits carry labels)
        found = LEVEL_BY_ANY_ID.get(level)  # TLP:CLEAR is level 0: test for None, never for truth
        if found is None and level.upper().startswith("TLP:"):
            found = TlpLevel.from_token(level[4:])
        if found is None:
            return Markup("")
        level = found
    return Markup('<span class="tlp {}">{}</span>').format(_TLP_CLASS[level], level.label)


def marking_badge(marking_id: str, names: dict[str, str] | None = None) -> Markup:
    """A marking reference: a TLP badge for the TLP markings, else what the marking says when the page
    knows it (a statement, with the id on hover), else the id."""
    if marking_id in LEVEL_BY_ANY_ID:
        return tlp_badge(marking_id)
    if names and marking_id in names:
        return Markup('<span class="marking" title="{}">{}</span>').format(marking_id, names[marking_id])
    return Markup('<code class="marking">{}</code>').format(escape(marking_id))


def _stamp(text: object, language: str) -> str:
    """A STIX timestamp property as the reader's language writes it (as it is, if it is not one)."""
    try:
        return when(parse_timestamp(str(text)), language)
    except ValueError:
        return str(text)


@cache
def environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    catalog = translations(language)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(language=language, languages=LANGUAGES, language_names=LANGUAGE_NAMES,
                       well_known_creators=WELL_KNOWN_CREATORS)  # named, but no node holds their objects
    env.filters.update(
        when=lambda micros: when(micros, language),
        number=lambda value: number(value, language),
        stamp=lambda text: _stamp(text, language),
        tlp=tlp_badge,
        marking=marking_badge,
        # A STIX type's name in the reader's language; a type without one keeps its identifier.
        kind=lambda stix_type: catalog.gettext(TYPE_NAMES[stix_type]) if stix_type in TYPE_NAMES else stix_type,
        say=lambda text: said(text, catalog.gettext),
    )
    return env


def said(text: Any, gettext: Callable[[str], str]) -> Any:
    """A message of a room below the console (core/messages.py) in the reader's language, the values put
    back as they are (a message among them said too); any other text as it is."""
    if not isinstance(text, Message):
        return text
    template = gettext(text.template)
    return template % {key: said(value, gettext) for key, value in text.params.items()} if text.params else template


def render_page(language: str, template: str, values: dict[str, Any]) -> str:
    return environment(language).get_template(template).render(values)


def warm_console() -> None:
    """Load each language's catalog and locale data (Babel reads its CLDR data on the first date it formats
    in a language), as the first page in that language would."""
    moment = now_micros()
    for language in LANGUAGES:
        environment(language)
        when(moment, language)
        number(1000, language)
