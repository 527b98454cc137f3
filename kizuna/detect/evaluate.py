"""Full STIX 2.1 pattern evaluation over a set of observations.

Matching a pattern means finding a *binding*: an observation instance for every observation
expression such that AND/OR/FOLLOWEDBY and the WITHIN/START-STOP/REPEATS qualifiers hold. An
observation with number_observed = n offers n instances. Bindings are generated lazily, so a match
is usually found after looking at few of them.

This module is the exact, general path. The indexed matcher (index.py) uses it only to confirm
candidates; an event stream never reaches it for IOC-style indicators.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from kizuna.detect.errors import MatchError
from kizuna.detect.model import (
    STAR,
    CompAnd,
    Comparison,
    CompiledPattern,
    CompNode,
    FollowedBy,
    ObjectPath,
    ObsAnd,
    ObsNode,
    ObsOr,
    ObsSimple,
    Repeats,
    StartStop,
    Within,
    comparisons,
    observation_leaves,
)
from kizuna.detect.observations import Observation

Instance = tuple[int, int]
Binding = tuple[Instance | None, ...]


def _decode_suffixed(key: str, value: Any) -> Any:
    """Properties named *_hex / *_bin hold binary data; compare them as bytes."""
    try:
        if key.endswith("_hex"):
            return binascii.a2b_hex(value)
        if key.endswith("_bin"):
            return base64.standard_b64decode(value)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise MatchError(f"property {key} does not hold valid binary data") from exc
    return value


def _dereference(observation: Observation, key: str, refs: Sequence[Any]) -> list[Any]:
    found = []
    for ref in refs:
        if not isinstance(ref, str):
            raise MatchError(f"reference property '{key}' holds a non-string value: {ref!r}")
        target = observation.resolve(ref)
        if target is not None:
            found.append(target)
    return found


def path_values(path: ObjectPath, root: Any, observation: Observation) -> list[Any]:
    """Every value the path selects, starting from one root object; references are followed."""
    current: list[Any] = [root]
    for step in path.steps:
        if isinstance(step, str):
            stepped = [
                _decode_suffixed(step, obj[step]) for obj in current if isinstance(obj, dict) and step in obj
            ]
            if step.endswith("_ref"):
                stepped = _dereference(observation, step, stepped)
            elif step.endswith("_refs"):
                lists = []
                for refs in stepped:
                    if not isinstance(refs, list):
                        raise MatchError(f"reference list property '{step}' is not a list: {refs!r}")
                    targets = _dereference(observation, step, refs)
                    if targets:
                        lists.append(targets)
                stepped = lists
            current = stepped
        elif step is STAR:
            current = [item for obj in current if isinstance(obj, list) for item in obj]
        else:
            assert isinstance(step, int)
            current = [obj[step] for obj in current if isinstance(obj, list) and 0 <= step < len(obj)]
        if not current:
            return current
    return current


def test_comparison(comparison: Comparison, root: Any, observation: Observation) -> bool:
    if root.get("type") != comparison.path.object_type:
        return False
    values = path_values(comparison.path, root, observation)
    if comparison.operator == "EXISTS":
        return bool(values) != comparison.negated
    predicate = comparison.predicate
    return any(predicate(value) for value in values)


def test_root(node: CompNode, root: Any, observation: Observation) -> bool:
    """Evaluate a comparison expression on one root object.

    Both sides of AND/OR are always evaluated so that data errors surface the same way whatever
    the operand order.
    """
    if isinstance(node, Comparison):
        return test_comparison(node, root, observation)
    left = test_root(node.left, root, observation)
    right = test_root(node.right, root, observation)
    return (left and right) if isinstance(node, CompAnd) else (left or right)


def observation_passes(node: CompNode, observation: Observation) -> bool:
    types = {c.path.object_type for c in comparisons(node)}
    passed = False
    for object_type in types:
        for root in observation.of_type(object_type):
            if test_root(node, root, observation):
                passed = True
    return passed


def _width(node: ObsNode) -> int:
    if isinstance(node, ObsSimple):
        return 1
    if isinstance(node, Repeats):
        return _width(node.inner) * node.times
    if isinstance(node, Within | StartStop):
        return _width(node.inner)
    return _width(node.left) + _width(node.right)


def _ids(binding: Binding) -> set[Instance]:
    return {i for i in binding if i is not None}


class _Search:
    def __init__(self, pattern: CompiledPattern, observations: Sequence[Observation]) -> None:
        self.observations = observations
        # Every leaf is evaluated on every observation up front, so that invalid data is reported
        # even when the pattern could be decided without it.
        self.leaf_hits: dict[int, list[int]] = {}
        for leaf in observation_leaves(pattern.root):
            if id(leaf) not in self.leaf_hits:
                self.leaf_hits[id(leaf)] = [
                    i for i, obs in enumerate(observations) if observation_passes(leaf.expression, obs)
                ]

    def first(self, binding: Binding) -> Any:
        return max(self.observations[i[0]].first_observed for i in binding if i is not None)

    def last(self, binding: Binding) -> Any:
        return min(self.observations[i[0]].last_observed for i in binding if i is not None)

    def bindings(self, node: ObsNode) -> Iterator[Binding]:
        if isinstance(node, ObsSimple):
            for i in self.leaf_hits[id(node)]:
                for k in range(self.observations[i].count):
                    yield ((i, k),)
        elif isinstance(node, ObsOr):
            left_pad: Binding = (None,) * _width(node.left)
            right_pad: Binding = (None,) * _width(node.right)
            for b in self.bindings(node.left):
                yield b + right_pad
            for b in self.bindings(node.right):
                yield left_pad + b
        elif isinstance(node, ObsAnd | FollowedBy):
            yield from self._joined(node)
        elif isinstance(node, Within):
            span = timedelta(seconds=node.seconds)
            for b in self.bindings(node.inner):
                # 9.5.1: the latest timestamp "MUST NOT be equal to or later than" the earliest plus
                # the window, so observations exactly x seconds apart do not qualify.
                ceiling = self.last(b) + span
                if all(self.observations[i[0]].first_observed < ceiling for i in b if i is not None):
                    yield b
        elif isinstance(node, StartStop):
            if node.start >= node.stop:
                return
            for b in self.bindings(node.inner):
                if all(
                    self.observations[i[0]].first_observed < node.stop
                    and self.observations[i[0]].last_observed >= node.start
                    for i in b
                    if i is not None
                ):
                    yield b
        else:
            assert isinstance(node, Repeats)
            yield from self._repeats(node)

    def _joined(self, node: ObsAnd | FollowedBy) -> Iterator[Binding]:
        # Pull from both sides in turn and pair each new binding with everything seen on the other
        # side, so a match is found without enumerating either side fully.
        ordered = isinstance(node, FollowedBy)
        lefts, rights = self.bindings(node.left), self.bindings(node.right)
        seen_left: list[Binding] = []
        seen_right: list[Binding] = []

        def ok(lhs: Binding, rhs: Binding) -> bool:
            if not _ids(lhs).isdisjoint(_ids(rhs)):
                return False
            return not ordered or self.first(lhs) <= self.last(rhs)

        next_left, next_right = next(lefts, None), next(rights, None)
        if next_left is None or next_right is None:
            return
        while next_left is not None or next_right is not None:
            if next_right is not None:
                for lhs in seen_left:
                    if ok(lhs, next_right):
                        yield lhs + next_right
                seen_right.append(next_right)
                next_right = next(rights, None)
            if next_left is not None:
                for rhs in seen_right:
                    if ok(next_left, rhs):
                        yield next_left + rhs
                seen_left.append(next_left)
                next_left = next(lefts, None)

    def _repeats(self, node: Repeats) -> Iterator[Binding]:
        candidates = [(b, _ids(b)) for b in self.bindings(node.inner)]
        needed = node.times

        def extend(start: int, count: int, used: set[Instance]) -> Iterator[Binding]:
            if count == 0:
                yield ()
                return
            for index in range(start, len(candidates) - count + 1):
                binding, ids = candidates[index]
                if ids & used:
                    continue
                for rest in extend(index + 1, count - 1, used | ids):
                    yield binding + rest

        # Cheap upper bound: disjoint bindings cannot outnumber the distinct instances available.
        smallest = min((len(ids) for _, ids in candidates), default=0)
        available = set().union(*(ids for _, ids in candidates)) if candidates else set()
        if len(candidates) < needed or (smallest and len(available) < needed * smallest):
            return
        yield from extend(0, needed, set())


def match_observations(pattern: CompiledPattern, observations: Sequence[Observation]) -> list[Observation]:
    """Return the observations of the first binding found, or [] when the pattern does not match."""
    search = _Search(pattern, observations)
    binding = next(search.bindings(pattern.root), None)
    if binding is None:
        return []
    indices = sorted({i[0] for i in binding if i is not None})
    return [observations[i] for i in indices]


def matches(pattern: CompiledPattern, observations: Sequence[Observation]) -> bool:
    return bool(match_observations(pattern, observations))
