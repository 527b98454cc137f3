"""Turn STIX pattern text into a CompiledPattern.

Most shared indicators are IOC-shaped (`[ipv4-addr:value = '1.2.3.4']`, hash or URL equality, ORs of
those). A full ANTLR parse costs a few hundred microseconds, which makes compiling 100,000 indicators
take most of a minute, so those shapes go through a strict regular-expression fast path that accepts
only text the full grammar would parse identically. Everything else goes through the grammar.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import antlr4
from stix2patterns.exceptions import ParseException
from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser as P
from stix2patterns.v21.pattern import Pattern as GrammarPattern

from kizuna.detect.canonical import CASELESS, PATTERN_NORMALISERS
from kizuna.detect.errors import MatchError, PatternError
from kizuna.detect.model import (
    STAR,
    CompAnd,
    Comparison,
    CompiledPattern,
    CompNode,
    CompOr,
    FollowedBy,
    ObjectPath,
    ObsAnd,
    ObsNode,
    ObsOr,
    ObsSimple,
    PathStep,
    Repeats,
    StartStop,
    Within,
)
from kizuna.detect.values import (
    Literal,
    Predicate,
    TextMatcher,
    compare_order,
    ip_in_subnet,
    json_timestamp,
    like_to_regex,
    make_literal_set,
    nfc,
    parse_timestamp,
    values_equal,
)
from kizuna.stix.pattern_scan import scan_comparisons, unquote

# --- literal decoding -------------------------------------------------------------------------


def _decode_literal(token_type: int, text: str) -> Literal:
    try:
        if token_type in (P.IntPosLiteral, P.IntNegLiteral):
            return int(text)
        if token_type in (P.FloatPosLiteral, P.FloatNegLiteral):
            return float(text)
        if token_type == P.StringLiteral:
            return unquote(text)
        if token_type == P.BoolLiteral:
            return text.lower() == "true"
        if token_type == P.BinaryLiteral:
            return base64.standard_b64decode(text[2:-1])
        if token_type == P.HexLiteral:
            return binascii.a2b_hex(text[2:-1])
        if token_type == P.TimestampLiteral:
            return parse_timestamp(text[2:-1])
    except (ValueError, binascii.Error) as exc:
        raise PatternError(f"invalid literal {text}") from exc
    raise PatternError(f"unsupported literal {text}")


# --- predicates ---------------------------------------------------------------------------------

_ORDER_TESTS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


@lru_cache(maxsize=4096)  # a path is immutable, and a feed names a handful of them over and over
def _path_form(path: ObjectPath) -> tuple[Callable[[str], str] | None, bool]:
    """The normaliser of the values of a path (kizuna/detect/canonical.py) and whether they are names, the
    same in any case; (None, False) for a path whose values are compared as written."""
    key = (path.object_type, path.dotted())
    return PATTERN_NORMALISERS.get(key), key in CASELESS


def canonical_operand(path: ObjectPath, operator: str, literal: Any) -> Any:
    """The constant of a comparison in the form the values of its path are compared in: a domain name in
    lower case without the final dot, an IPv6 address compressed (canonical.py), for `=`, `!=` and `IN`;
    a LIKE operand on a name lower-cased. The pattern's text is not changed, only what is compiled from it.
    ISSUBSET and ISSUPERSET compare addresses as numbers, and MATCHES ignores case on names (make_comparison)."""
    normalise, caseless = _path_form(path)
    if normalise is None:
        return literal
    if operator in ("=", "!=") and type(literal) is str:
        return normalise(literal)
    if operator == "IN" and all(type(member) is str for member in literal):
        return frozenset(normalise(member) for member in literal)
    if operator == "LIKE" and caseless:
        return literal.lower()
    return literal


def make_comparison(path: ObjectPath, operator: str, negated: bool, literal: Any) -> Comparison:
    """Build a comparison node with its predicate; raises PatternError for unusable operands."""
    matcher: TextMatcher | None = None
    literal = canonical_operand(path, operator, literal)
    pred: Predicate
    if operator in ("=", "!="):
        invert = (operator == "!=") != negated
        coerce = isinstance(literal, datetime)

        def pred(value: Any) -> bool:
            if coerce and type(value) is str:
                value = json_timestamp(value)
            return values_equal(value, literal) != invert

    elif operator in _ORDER_TESTS:
        test = _ORDER_TESTS[operator]
        coerce = isinstance(literal, datetime)

        def pred(value: Any) -> bool:
            if coerce and type(value) is str:
                value = json_timestamp(value)
            try:
                order = compare_order(value, literal)
            except ValueError:
                return negated
            if order is None:
                # Incompatible types make the comparison false, and NOT negates that (STIX 9.6.1).
                return negated
            return test(order) != negated

    elif operator == "IN":
        # IN is "a is equal to one of the values in the list": the rules of `=`, so `true IN (1)`
        # is false and a string member is compared as binary data to a _hex/_bin property.
        members = literal
        coerce = bool(members) and isinstance(next(iter(members)), datetime)
        all_text = all(type(m) is str for m in members)

        def pred(value: Any) -> bool:
            if coerce and type(value) is str:
                value = json_timestamp(value)
            if all_text and type(value) is str:
                found = value in members
            else:
                found = any(values_equal(value, member) for member in members)
            return found != negated

    elif operator in ("LIKE", "MATCHES"):
        source = like_to_regex(nfc(literal)) if operator == "LIKE" else nfc(literal)
        if operator == "MATCHES" and _path_form(path)[1]:
            # A name is the same name in any case (RFC 4343) and reaches the matcher in lower case: an
            # expression written for `EVIL.example.com` finds it. `(?i)` leads, where Python's re and RE2
            # (the index's pre-filter) both read it as a flag for the whole expression.
            source = "(?i)" + source
        try:
            matcher = TextMatcher(source, anchored=operator == "LIKE")
        except re.error as exc:
            raise PatternError(f"invalid regular expression {literal!r}: {exc}") from exc
        text_matcher = matcher

        def pred(value: Any) -> bool:
            try:
                return text_matcher.test(value) != negated
            except UnicodeDecodeError as exc:
                raise MatchError(f"binary value is not UTF-8 text: {exc}") from exc

    elif operator == "ISSUBSET":

        def pred(value: Any) -> bool:
            return (type(value) is str and ip_in_subnet(value, literal)) != negated

    elif operator == "ISSUPERSET":

        def pred(value: Any) -> bool:
            return (type(value) is str and ip_in_subnet(literal, value)) != negated

    elif operator == "EXISTS":

        def pred(value: Any) -> bool:
            return True

    else:  # pragma: no cover - the grammar has no other operators
        raise PatternError(f"unsupported operator {operator}")
    return Comparison(path, operator, negated, literal, pred, matcher)


# --- fast path ----------------------------------------------------------------------------------

def ioc_terms(text: str) -> list[tuple[ObjectPath, str]] | None:
    """For IOC-shaped patterns, the (path, string) equalities ORed together, each string as `make_comparison`
    compiles it (`canonical_operand`); None for other patterns."""
    groups = scan_comparisons(text)
    if groups is None or any(len(group) != 1 or group[0][2] != "=" for group in groups):
        return None
    terms = []
    for ((object_type, steps, _, literal),) in groups:
        path = _scanned_path(object_type, steps)
        terms.append((path, canonical_operand(path, "=", unquote(literal))))
    return terms


@lru_cache(maxsize=4096)  # a feed names a handful of paths over and over; an ObjectPath is immutable
def _scanned_path(object_type: str, steps: tuple[str, ...]) -> ObjectPath:
    return ObjectPath(object_type, tuple(unquote(step) for step in steps))


def _fast_compile(text: str) -> CompiledPattern | None:
    """Compile what stix/pattern_scan.py reads without the grammar, into the grammar's own tree: AND binds
    before OR and both group from the left, so ``[a OR b AND c OR d]`` is ``((a OR (b AND c)) OR d)``
    (tests/detect/test_differential_hypothesis.py holds the two equal). The grammar's parse costs about 60% of
    compiling a feed whose patterns it must read (bench/README.md)."""
    groups = scan_comparisons(text)
    if groups is None:
        return None
    node: CompNode | None = None
    for group in groups:
        chain: CompNode | None = None
        for object_type, steps, operator, literal in group:
            comparison = make_comparison(_scanned_path(object_type, steps), operator, False, unquote(literal))
            chain = comparison if chain is None else CompAnd(chain, comparison)
        assert chain is not None
        node = chain if node is None else CompOr(node, chain)
    assert node is not None
    return CompiledPattern(text, ObsSimple(node), parsed_fast=True)


# --- full grammar -------------------------------------------------------------------------------


def _first_terminal(ctx: Any) -> Any:
    if isinstance(ctx, antlr4.TerminalNode):
        return ctx
    for child in ctx.getChildren():
        found = _first_terminal(child)
        if found is not None:
            return found
    return None


def _literal(ctx: Any) -> Literal:
    terminal = _first_terminal(ctx)
    return _decode_literal(terminal.getSymbol().type, terminal.getText())


def _token_literal(terminal: Any) -> Literal:
    return _decode_literal(terminal.getSymbol().type, terminal.getText())


def _observations(ctx: Any) -> ObsNode:
    if ctx.FOLLOWEDBY():
        return FollowedBy(
            _observations(ctx.observationExpressions(0)), _observations(ctx.observationExpressions(1))
        )
    return _observation_or(ctx.observationExpressionOr())


def _observation_or(ctx: Any) -> ObsNode:
    if ctx.OR():
        return ObsOr(
            _observation_or(ctx.observationExpressionOr(0)), _observation_or(ctx.observationExpressionOr(1))
        )
    return _observation_and(ctx.observationExpressionAnd())


def _observation_and(ctx: Any) -> ObsNode:
    if ctx.AND():
        return ObsAnd(
            _observation_and(ctx.observationExpressionAnd(0)),
            _observation_and(ctx.observationExpressionAnd(1)),
        )
    return _observation(ctx.observationExpression())


def _observation(ctx: Any) -> ObsNode:
    if isinstance(ctx, P.ObservationExpressionSimpleContext):
        return ObsSimple(_comparison_or(ctx.comparisonExpression()))
    if isinstance(ctx, P.ObservationExpressionCompoundContext):
        return _observations(ctx.observationExpressions())
    if isinstance(ctx, P.ObservationExpressionRepeatedContext):
        times = _token_literal(ctx.repeatedQualifier().IntPosLiteral())
        if not isinstance(times, int) or times < 1:
            raise PatternError(f"Invalid repetition count: {times!r}")
        return Repeats(_observation(ctx.observationExpression()), times)
    if isinstance(ctx, P.ObservationExpressionWithinContext):
        qualifier = ctx.withinQualifier()
        seconds = _token_literal(qualifier.FloatPosLiteral() or qualifier.IntPosLiteral())
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise PatternError(f"Invalid WITHIN value (must be positive): {seconds!r}")
        return Within(_observation(ctx.observationExpression()), float(seconds))
    if isinstance(ctx, P.ObservationExpressionStartStopContext):
        qualifier = ctx.startStopQualifier()
        start = _token_literal(qualifier.TimestampLiteral(0))
        stop = _token_literal(qualifier.TimestampLiteral(1))
        assert isinstance(start, datetime) and isinstance(stop, datetime)
        return StartStop(_observation(ctx.observationExpression()), start, stop)
    raise PatternError(f"unsupported observation expression {ctx.getText()}")  # pragma: no cover


def _comparison_or(ctx: Any) -> CompNode:
    if ctx.OR():
        return CompOr(
            _comparison_or(ctx.comparisonExpression(0)), _comparison_or(ctx.comparisonExpression(1))
        )
    return _comparison_and(ctx.comparisonExpressionAnd())


def _comparison_and(ctx: Any) -> CompNode:
    if ctx.AND():
        return CompAnd(
            _comparison_and(ctx.comparisonExpressionAnd(0)), _comparison_and(ctx.comparisonExpressionAnd(1))
        )
    return _prop_test(ctx.propTest())


def _path_components(ctx: Any, out: list[PathStep]) -> None:
    if isinstance(ctx, P.PathStepContext):
        for child in ctx.objectPathComponent():
            _path_components(child, out)
    elif isinstance(ctx, P.KeyPathStepContext):
        ident = ctx.IdentifierWithoutHyphen()
        out.append(ident.getText() if ident else unquote(ctx.StringLiteral().getText()))
    elif isinstance(ctx, P.IndexPathStepContext):
        if ctx.ASTERISK():
            out.append(STAR)
        else:
            out.append(int((ctx.IntPosLiteral() or ctx.IntNegLiteral()).getText()))


def _object_path(ctx: Any) -> ObjectPath:
    type_ctx = ctx.objectType()
    object_type = (type_ctx.IdentifierWithoutHyphen() or type_ctx.IdentifierWithHyphen()).getText()
    first = ctx.firstPathComponent()
    ident = first.IdentifierWithoutHyphen()
    steps: list[PathStep] = [ident.getText() if ident else unquote(first.StringLiteral().getText())]
    component = ctx.objectPathComponent()
    if component is not None:
        _path_components(component, steps)
    return ObjectPath(object_type, tuple(steps))


def _prop_test(ctx: Any) -> CompNode:
    if isinstance(ctx, P.PropTestParenContext):
        return _comparison_or(ctx.comparisonExpression())
    negated = ctx.NOT() is not None
    path = _object_path(ctx.objectPath())
    if isinstance(ctx, P.PropTestEqualContext):
        operator = "=" if ctx.EQ() else "!="
        return make_comparison(path, operator, negated, _literal(ctx.primitiveLiteral()))
    if isinstance(ctx, P.PropTestOrderContext):
        op_token = ctx.GT() or ctx.LT() or ctx.GE() or ctx.LE()
        return make_comparison(path, op_token.getText(), negated, _literal(ctx.orderableLiteral()))
    if isinstance(ctx, P.PropTestSetContext):
        values = [_literal(lit) for lit in ctx.setLiteral().primitiveLiteral()]
        try:
            members = make_literal_set(values)
        except ValueError as exc:
            raise PatternError(f"Nonhomogenous set: {ctx.setLiteral().getText()}") from exc
        return make_comparison(path, "IN", negated, members)
    if isinstance(ctx, P.PropTestLikeContext):
        return make_comparison(path, "LIKE", negated, unquote(ctx.StringLiteral().getText()))
    if isinstance(ctx, P.PropTestRegexContext):
        return make_comparison(path, "MATCHES", negated, unquote(ctx.StringLiteral().getText()))
    if isinstance(ctx, P.PropTestIsSubsetContext):
        return make_comparison(path, "ISSUBSET", negated, unquote(ctx.StringLiteral().getText()))
    if isinstance(ctx, P.PropTestIsSupersetContext):
        return make_comparison(path, "ISSUPERSET", negated, unquote(ctx.StringLiteral().getText()))
    if isinstance(ctx, P.PropTestExistsContext):
        return make_comparison(path, "EXISTS", negated, None)
    raise PatternError(f"unsupported comparison {ctx.getText()}")  # pragma: no cover


class _TreeCapture:
    """Grab the root parse tree from a grammar pattern through its public visit() hook."""

    def visit(self, tree: Any) -> Any:
        return tree


def compile_pattern(text: str, *, allow_fast_path: bool = True) -> CompiledPattern:
    """Compile STIX 2.1 pattern text; raise PatternError when it is not valid."""
    if allow_fast_path:
        fast = _fast_compile(text)
        if fast is not None:
            return fast
    try:
        tree = GrammarPattern(text).visit(_TreeCapture())
    except ParseException as exc:
        raise PatternError(str(exc)) from exc
    return CompiledPattern(text, _observations(tree.observationExpressions()))
