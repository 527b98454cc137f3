"""Languages of the console: message catalogs (gettext via Babel), the reader's language, and dates
and numbers written the way each language writes them.

English is the source language (the msgids); Japanese comes from ``locale/ja/LC_MESSAGES/kizuna.mo``.
TLP labels are never passed through gettext: FIRST requires ``TLP:AMBER+STRICT`` in every language.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"
#: Each language's name written in itself, for the language switch.
LANGUAGE_NAMES = {"en": "English", "ja": "日本語"}
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "kizuna"


@cache
def translations(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], DOMAIN)


def supported(language: str | None) -> str | None:
    return language if language in LANGUAGES else None


def negotiate(accept_language: str | None) -> str:
    """The language a first visit gets: the best of ``Accept-Language`` that the console speaks."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    weighted: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag:
            weighted.append((quality, tag.strip()))
    weighted.sort(key=lambda pair: -pair[0])
    chosen = Locale.negotiate([tag.replace("-", "_") for quality, tag in weighted if quality > 0],
                              list(LANGUAGES), sep="_")
    return str(chosen.language) if chosen is not None else DEFAULT_LANGUAGE


def when(micros: int | None, language: str) -> str:
    """A moment (µs since the epoch) as the reader's language writes it, always in UTC."""
    if micros is None:
        return ""
    moment = dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)
    return format_datetime(moment, "medium", tzinfo=dt.UTC, locale=language) + " UTC"


def number(value: int, language: str) -> str:
    return format_decimal(value, locale=language)
