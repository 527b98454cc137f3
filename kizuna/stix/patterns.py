"""Is this STIX 2.1 pattern valid? Checked at ingest, so an indicator that can never match is refused.

``stix_pattern_problem(text)`` returns ``None`` for a valid pattern, otherwise one short reason.
A pattern is valid when

* the OASIS grammar (the ``stix2-patterns`` library) parses it, with that library's semantic
  checks: a hash literal must have the length and alphabet of its algorithm (``hashes.MD5`` is 32
  hex digits), and no observation carries two qualifiers of one kind;
* every object type it names is a STIX 2.1 cyber-observable type, or a custom type spelled with the
  ``x-`` prefix. The grammar accepts any identifier as an object type, so ``[ipv4-adr:value = ...]``
  or ``[foo:bar = 1]`` would otherwise be stored and silently never match anything.

The grammar is an ANTLR parser that costs a few hundred microseconds per pattern, which would more
than halve the ingest rate of an indicator feed. Most shared indicators are IOC-shaped
(``[ipv4-addr:value = '1.2.3.4']``, hash or URL comparisons joined by AND/OR), so those go through a
strict regular expression that accepts only text the grammar parses, and get the same hash and
object-type checks; everything else goes through the grammar. Results are remembered for a bounded
number of pattern texts, since feeds repeat patterns across versions of an indicator.

Sigma and YARA patterns are checked by their own parsers (``foreign_pattern_problem``): a Sigma
rule must be read by pySigma without errors and its condition must parse; a YARA rule must compile
with yara-python (with ``include`` switched off, so a shared rule cannot make the node read its own
files). Both are imported on the first such pattern, so a node that never sees one never loads them.
Other pattern languages (Snort, Suricata, PCRE) are stored unchecked: none of their parsers is a
Kizuna dependency.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any, Final

from kizuna.stix import vocab
from kizuna.stix.pattern_scan import scan_comparisons, unquote

__all__ = ["CHECKED_LANGUAGES", "foreign_pattern_problem", "stix_pattern_problem"]

# One ANTLR parse at a time: the runtime's shared prediction caches are not written with
# concurrent server threads in mind, and parsing holds the GIL anyway.
_grammar_lock = threading.Lock()


def pattern_type_problem(object_type: str) -> str | None:
    """Why a pattern may not name this object type (not a STIX 2.1 cyber-observable nor x-), or None."""
    if object_type in vocab.SCO_TYPES:
        return None
    if object_type.startswith("x-") and re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", object_type):
        return None
    return (
        f"pattern names unknown object type {object_type!r} "
        "(not a STIX 2.1 cyber-observable; custom types start with x-)"
    )


@lru_cache(maxsize=1)
def _hash_rules() -> dict[str, Any]:
    """The grammar library's table of hash-literal formats, compiled once (imported on first use)."""
    from stix2patterns.v21.object_validator import HASHES_REGEX

    return {name: re.compile(rule[0]).match for name, rule in HASHES_REGEX.items()}


def _hash_problem(steps: list[Any], value: Any) -> str | None:
    """The grammar library's hash-literal rule (its own table and reading of it), for any path."""
    if "hashes" not in steps or not isinstance(steps[-1], str):
        return None
    name = steps[-1].replace("'", "")
    rule = _hash_rules().get(name.upper().replace("-", ""))
    digest = str(value).replace("'", "")
    if rule is not None and not rule(digest):
        return f"pattern has {digest!r}, which is not a valid {name} hash"
    return None


def _fast_problem(text: str) -> str | None | bool:
    """A problem, None (valid), or False when the text is not read by stix/pattern_scan.py (or compares by
    MATCHES or ISSUBSET, whose regular expression or address block is the grammar's to judge) and needs the
    grammar."""
    groups = scan_comparisons(text)
    if groups is None:
        return False
    problem = None
    for group in groups:
        for object_type, steps, operator, literal in group:
            if operator in ("MATCHES", "ISSUBSET"):
                return False
            if problem is None:
                problem = pattern_type_problem(object_type)
            if problem is None and "hashes" in steps:
                problem = _hash_problem([unquote(step) for step in steps], unquote(literal))
    return problem


def _grammar_problem(text: str) -> str | None:
    from antlr4 import CommonTokenStream, InputStream, ParseTreeWalker
    from stix2patterns.exceptions import STIXPatternErrorListener
    from stix2patterns.helpers import brackets_check
    from stix2patterns.v21.grammars.STIXPatternLexer import STIXPatternLexer
    from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser
    from stix2patterns.v21.inspector import InspectionListener
    from stix2patterns.v21.validator import DuplicateQualifierTypeError, ValidationListener

    # stix2patterns' brackets_check raises on an empty string (found by fuzzing: an indicator with
    # pattern "" was a 500 over TAXII and an internal error in `kizuna import`).
    if not text.strip():
        return "pattern is empty"
    if not brackets_check(text):
        return "pattern is not valid STIX patterning: it must start with '['"
    with _grammar_lock:
        errors = STIXPatternErrorListener()
        lexer = STIXPatternLexer(InputStream(text))
        lexer.removeErrorListeners()
        parser = STIXPatternParser(CommonTokenStream(lexer))
        parser.removeErrorListeners()
        parser.addErrorListener(errors)
        tree = parser.pattern()
        if errors.err_strings:
            return "pattern is not valid STIX patterning: " + _clean(errors.err_strings[0])
        inspection = InspectionListener()
        ParseTreeWalker.DEFAULT.walk(inspection, tree)
        data: Any = inspection.pattern_data()
        try:
            ParseTreeWalker.DEFAULT.walk(ValidationListener(), tree)
        except DuplicateQualifierTypeError as exc:
            return f"pattern is not valid STIX patterning: {exc}"
    for object_type, comparisons in data.comparisons.items():
        problem = pattern_type_problem(object_type)
        for path, _operator, value in comparisons:
            problem = problem or _hash_problem(list(path), value)
        if problem is not None:
            return problem
    return None


def _clean(message: str) -> str:
    return " ".join(message.removeprefix("FAIL: ").split())


@lru_cache(maxsize=4096)
def stix_pattern_problem(text: str) -> str | None:
    """``None`` if ``text`` is a valid STIX 2.1 pattern, else the reason it is not."""
    fast = _fast_problem(text)
    if fast is not False:
        return fast if isinstance(fast, str) else None
    return _grammar_problem(text)


# --------------------------------------------------------------------------- Sigma and YARA


def _sigma_problem(text: str) -> str | None:
    import yaml
    from sigma.collection import SigmaCollection

    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return f"Sigma rule is not valid YAML: {where}{exc.problem or exc.context}"
    except Exception as exc:  # noqa: BLE001 - a foreign parser on untrusted text: any failure is the reason
        return f"Sigma rule is not valid: {_one_line(exc)}"
    if collection.errors:
        return f"Sigma rule is not valid: {_one_line(collection.errors[0])}"
    if not collection.rules:
        return "Sigma pattern holds no rule"
    for rule in collection.rules:
        detection = getattr(rule, "detection", None)
        for condition in getattr(detection, "parsed_condition", None) or ():
            try:
                condition.parsed  # noqa: B018 - parsing is the check
            except Exception as exc:  # noqa: BLE001
                return f"Sigma rule {getattr(rule, 'title', '')!r} has an invalid condition: {_one_line(exc)}"
    return None


def _yara_problem(text: str) -> str | None:
    import yara

    if "\0" in text:
        # yara-python takes the source as a C string and raises ValueError on a NUL (found by fuzzing).
        return "YARA rule does not compile: it contains a NUL character"
    try:
        rules = yara.compile(source=text, includes=False)
    except yara.Error as exc:
        return f"YARA rule does not compile: {_one_line(exc)}"
    if not any(True for _rule in rules):
        return "YARA pattern holds no rule"
    return None


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


_FOREIGN_CHECKS: Final = {"sigma": _sigma_problem, "yara": _yara_problem}
#: The pattern languages besides STIX whose patterns are checked at ingest.
CHECKED_LANGUAGES: Final = frozenset(_FOREIGN_CHECKS)


@lru_cache(maxsize=1024)
def foreign_pattern_problem(pattern_type: str, text: str) -> str | None:
    """``None`` if ``text`` is a valid pattern of ``pattern_type`` (sigma or yara), else the reason.

    Languages Kizuna has no parser for are not judged (``None``).
    """
    check = _FOREIGN_CHECKS.get(pattern_type)
    return None if check is None else check(text)
