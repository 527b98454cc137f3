"""One reading of the patterns most indicators carry, without the pattern grammar.

``[file:hashes.MD5 = '…' AND file:name LIKE 'inv%' OR url:value = '…']``: one observation of comparisons of
an object path with a string literal, by ``=``, ``!=``, ``LIKE``, ``MATCHES`` or ``ISSUBSET``, joined by AND and OR. The
ANTLR grammar of stix2-patterns takes 300–450 µs to parse such a pattern; this reading takes a few. Both the
validator (stix/patterns.py), the matcher (detect/compiler.py) and the IOC writers (formats/iocs.py) read these
patterns here, each leaving
anything else (numbers, sets, qualifiers, parentheses, several observations) to the grammar, and each is held
equal to the grammar by generated tests (tests/detect/test_pattern_validation.py,
tests/detect/test_differential_hypothesis.py).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from kizuna.stix.ioc_terms import QUOTED

#: The grammar's keywords: its lexer never reads one as an object type or a bare path step.
KEYWORDS: Final = frozenset(
    "AND OR NOT FOLLOWEDBY LIKE MATCHES ISSUPERSET ISSUBSET EXISTS LAST IN START STOP SECONDS "
    "true false WITHIN REPEATS TIMES".split()
)
_WS: Final = r"[ \t\r\n]*"
_IDENT: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_TYPE: Final = r"[A-Za-z_][A-Za-z0-9_-]*"
#: A keyword ends where an identifier could not go on: the lexer reads the longest token, so ``ORdomain-name``
#: and ``nameLIKE`` are single identifiers, not a keyword beside a name.
_KEYWORD_END: Final = r"(?![A-Za-z0-9_-])"
#: One comparison of a path with a string; a word operator needs white space before it, else the lexer would
#: read it as part of the path's last name.
_TEST_AT: Final = re.compile(
    rf"{_WS}({_TYPE}):((?:{_IDENT}|{QUOTED})(?:\.(?:{_IDENT}|{QUOTED}))*){_WS}"
    rf"(=|!=|(?<=[ \t\r\n])(?:LIKE|MATCHES|ISSUBSET){_KEYWORD_END}){_WS}({QUOTED}){_WS}"
)
_OPEN_AT: Final = re.compile(rf"{_WS}\[")
_JOIN_AT: Final = re.compile(rf"(AND|OR){_KEYWORD_END}")
_CLOSE_AT: Final = re.compile(rf"\]{_WS}")
_STEP: Final = re.compile(rf"{_IDENT}|{QUOTED}")

#: One comparison as written: object type, path steps (a quoted step keeps its quotes), operator, the quoted
#: literal.
Comparison = tuple[str, tuple[str, ...], str, str]


def scan_comparisons(text: str) -> list[list[Comparison]] | None:
    """The OR-joined groups of AND-joined comparisons of ``text`` (AND binds before OR, as in the grammar), or
    None when the text is anything else, or names a keyword as an object type or a bare path step."""
    opened = _OPEN_AT.match(text)
    if opened is None:
        return None
    position = opened.end()
    groups: list[list[Comparison]] = [[]]
    while True:
        test = _TEST_AT.match(text, position)
        if test is None:
            return None
        steps = path_steps(test.group(1), test.group(2))
        if steps is None:
            return None
        groups[-1].append((test.group(1), steps, test.group(3), test.group(4)))
        position = test.end()
        if _CLOSE_AT.fullmatch(text, position):
            return groups
        joined = _JOIN_AT.match(text, position)
        if joined is None:
            return None
        if joined.group(1) == "OR":
            groups.append([])
        position = joined.end()


@lru_cache(maxsize=4096)  # a feed names a handful of paths over and over
def path_steps(object_type: str, path_text: str) -> tuple[str, ...] | None:
    """The steps of a path as written, or None if the type or a bare step is a keyword."""
    if object_type in KEYWORDS:
        return None
    steps = tuple(_STEP.findall(path_text))
    return None if not KEYWORDS.isdisjoint(steps) else steps


#: A string literal's body; a backslash keeps the next character inside it, whatever it is, so a pattern the
#: grammar would refuse for an unknown escape still reads as its quotes pair up.
_LITERAL: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")


def string_literals(text: str) -> list[str]:
    """The text of every string literal in a pattern, in order, whatever the comparisons around them."""
    return [unescape(body) for body in _LITERAL.findall(text)]


def unquote(token: str) -> str:
    """A quoted literal or path step's text; a bare step as it is."""
    return unescape(token[1:-1]) if token.startswith("'") else token


def unescape(body: str) -> str:
    """The text of a string literal's body, between its quotes: only ``\\'`` and ``\\\\`` are escapes in the
    grammar. Most values have none and are returned as they are, without a copy."""
    return body.replace("\\'", "'").replace("\\\\", "\\") if "\\" in body else body
