"""The searchable text of a STIX object, and what a search query asks of it.

The store indexes this text per stored version (``store/search_index.py``) and the core checks a
principal's own, possibly redacted, copy of an object against the same function
(``core/search.py``), so an index hit and the final check can never disagree on what an object says.

Text is the human words and values an analyst types into a search box: names, descriptions, patterns
(so an IP or a hash inside ``[ipv4-addr:value = '…']`` is found), SCO values, aliases, labels, report
abstracts, note and opinion texts, external ids (``T1059``, ``CVE-…``) and every language of a
``language-content`` object. Matching is by substring, case-insensitive, so Japanese needs no word
splitting: 攻撃 is found inside 標的型攻撃メール.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

#: Single string fields, in the order a snippet prefers them.
_TEXT_FIELDS: Final = (
    "name", "value", "pattern", "description", "abstract", "content", "explanation", "path", "subject",
    "display_name", "user_id", "number", "key",
)
_NAME_FIELDS: Final = ("name", "pattern", "value", "path", "key", "number", "user_id", "relationship_type")
#: Fields holding a list of strings.
_LIST_FIELDS: Final = ("aliases", "x_mitre_aliases", "labels", "authors", "roles")
#: Longest indexed text per object: a bulk of pasted text must not make one row huge.
MAX_TEXT_CHARS: Final = 32_768
#: Bounds of a query, so one request cannot ask for an unbounded amount of matching work.
MAX_QUERY_CHARS: Final = 200
MAX_TERMS: Final = 8
#: A term this short cannot use a trigram index (store/search_index.py says what happens instead).
TRIGRAM: Final = 3
#: Shortest term: one character would match nearly everything.
MIN_TERM: Final = 2


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (language-content ``contents`` nest lists and objects)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)


#: Every field the text is read from, in the order its parts come: single text fields (a snippet prefers the
#: first), lists of strings, external ids, hash values, and the strings of a language-content's ``contents``.
_READ_ORDER: Final = (*_TEXT_FIELDS, *_LIST_FIELDS, "external_references", "hashes", "contents")
_READ_RANK: Final = {name: rank for rank, name in enumerate(_READ_ORDER)}
_READ_FIELDS: Final = frozenset(_READ_ORDER)
_TEXT_SET: Final = frozenset(_TEXT_FIELDS)
_LIST_SET: Final = frozenset(_LIST_FIELDS)


def _other_parts(obj: Mapping[str, Any], field: str, value: Any, parts: list[str]) -> None:
    """Append the non-empty strings that ``field``, one of the fields not holding a single text, contributes."""
    if field in _LIST_SET:
        if isinstance(value, list):
            parts.extend(item for item in value if isinstance(item, str) and item)
    elif field == "external_references":
        if isinstance(value, list):
            parts.extend(ref["external_id"] for ref in value if isinstance(ref, Mapping)
                         and isinstance(ref.get("external_id"), str) and ref["external_id"])
    elif field == "hashes":
        if isinstance(value, Mapping):
            parts.extend(item for item in value.values() if isinstance(item, str) and item)
    elif obj.get("type") == "language-content":  # contents
        parts.extend(item for item in _strings(value) if item)


def display_name(obj: Mapping[str, Any]) -> str | None:
    """What a listing calls an object: its name, else the value or pattern that identifies it; a statement
    marking by what it says (STIX 2.1, 7.2.1.3), a translation by the name it gives."""
    for field in _NAME_FIELDS:
        value = obj.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    kind = obj.get("type")
    if kind == "marking-definition":
        definition = obj.get("definition")
        statement = definition.get("statement") if isinstance(definition, Mapping) else None
        return statement if isinstance(statement, str) and statement else None
    if kind == "language-content" and isinstance(obj.get("contents"), Mapping):
        for translated in obj["contents"].values():
            name = translated.get("name") if isinstance(translated, Mapping) else None
            if isinstance(name, str) and name:
                return name
    return None


def searchable_text(obj: Mapping[str, Any]) -> str:
    """The text a search matches in ``obj``: its searchable fields, one per line, without a field that another
    one already holds whole."""
    # Only the fields the object has are visited (most objects hold four or five of the twenty read), which
    # keeps this off the top of an ingest profile: every stored version is indexed by it.
    parts: list[str] = []
    for field in sorted(obj.keys() & _READ_FIELDS, key=_READ_RANK.__getitem__):
        value = obj[field]
        if field not in _TEXT_SET:
            _other_parts(obj, field, value, parts)
        elif type(value) is str:
            if value:
                parts.append(value)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(str(value))
    return "\n".join(_without_contained(parts))[:MAX_TEXT_CHARS]


#: Above this many parts (a language-content of many strings) every part is kept: the check is quadratic.
_CONTAINED_CHECK_PARTS: Final = 16


def _without_contained(parts: list[str]) -> list[str]:
    """``parts`` less each one found whole inside another (the first of equal ones stays).

    An indicator's name is mostly the value its pattern holds (``host.example`` and ``[domain-name:value =
    'host.example']``): every word found in the name is found in the pattern, so the name adds nothing a
    search could match, and the trigram index spends a third of an imported list's indexing on such copies
    (its writes hold the store's one write lock). Matching is by substring, so nothing findable is lost."""
    if len(parts) < 2 or len(parts) > _CONTAINED_CHECK_PARTS:
        return parts
    # One pass in C first: joined with a separator no part holds, a part occurs once (as itself) unless another
    # part holds it too, and only such parts take the check part by part.
    joined = "\x00".join(parts)
    separate = joined.count("\x00") == len(parts) - 1
    return [part for i, part in enumerate(parts)
            if (separate and joined.count(part) == 1)
            or not any(j != i and part in other and (len(other) > len(part) or j < i)
                       for j, other in enumerate(parts))]


def indexable(text: str) -> str:
    """Text as the search index holds it, and a query as it is looked for there: without NUL, which SQLite's
    FTS5 query syntax and PostgreSQL's text both refuse (and which no reader types on purpose)."""
    return text.replace("\x00", "")


def query_terms(text: str) -> tuple[str, ...] | str:
    """The terms of a query (every one must occur), or the reason it cannot be run."""
    if len(text) > MAX_QUERY_CHARS:
        return f"a search is at most {MAX_QUERY_CHARS} characters"
    terms = tuple(dict.fromkeys(indexable(text).split()))
    if not terms:
        return "a search needs at least one word"
    if len(terms) > MAX_TERMS:
        return f"a search is at most {MAX_TERMS} words"
    short = next((term for term in terms if len(term) < MIN_TERM), None)
    if short is not None:
        return f"{short!r} is too short to search for: give words of {MIN_TERM} or more characters"
    return terms


#: Runs of two or more non-ASCII letters or digits.
_WIDE_RUN: Final = re.compile(r"[^\x00-\x7f\W_]{2,}")


def _wide(char: str) -> bool:
    """A letter of a script written without spaces or with short words (CJK, kana, hangul...)."""
    return not char.isascii() and char.isalnum()


def is_pair_term(term: str) -> bool:
    """A two-character word such as 攻撃, which the store finds by its pair index, not by trigrams."""
    return len(term) == 2 and _wide(term[0]) and _wide(term[1])


def pairs(text: str) -> set[str]:
    """Every two-letter sequence of non-ASCII letters in ``text``, case-folded: the words a trigram index
    cannot find (Japanese and Chinese two-character words are common and meaningful)."""
    if text.isascii():  # most indexed text: patterns, hashes, English
        return set()
    return {run[i:i + 2] for run in _WIDE_RUN.findall(fold(text)) for i in range(len(run) - 1)}


def fold(text: str) -> str:
    """``text`` as words are matched in it, ignoring case in every script: by ``matches`` here and by the store's
    check of each word in the rows its index finds (store/search_index.py), so the two never disagree."""
    return text.casefold()


def matches(text: str, terms: tuple[str, ...]) -> bool:
    """Whether every term occurs in ``text``, ignoring case."""
    folded = fold(text)
    return all(fold(term) in folded for term in terms)


def snippet(text: str, terms: tuple[str, ...], width: int = 160) -> str:
    """The line of ``text`` holding the first term, cut to ``width`` characters around it."""
    folded = fold(text)
    at = min((i for i in (folded.find(fold(t)) for t in terms) if i >= 0), default=0)
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    line = text[start:end if end >= 0 else len(text)]
    offset = at - start
    if len(line) <= width:
        return line
    begin = max(0, min(offset - width // 3, len(line) - width))
    return ("…" if begin else "") + line[begin:begin + width] + ("…" if begin + width < len(line) else "")
