"""The compiled form of a STIX pattern: a small tree of frozen nodes.

Comparison nodes carry a ready-to-call predicate, so evaluation never looks at pattern text again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kizuna.detect.values import Predicate, TextMatcher

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Star:
    """The `[*]` list step."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[*]"


STAR = _Star()

PathStep = str | int | _Star


@dataclass(frozen=True, slots=True)
class ObjectPath:
    object_type: str
    steps: tuple[PathStep, ...]

    def dotted(self) -> str:
        """The path without its type in pattern syntax (`hashes.'SHA-256'`, `refs[*].value`).

        It is unambiguous, so it serves as an index key and mapping files use the same spelling.
        """
        out: list[str] = []
        for step in self.steps:
            if isinstance(step, str):
                if out:
                    out.append(".")
                if _PLAIN_KEY.fullmatch(step):
                    out.append(step)
                else:
                    out.append("'" + step.replace("\\", "\\\\").replace("'", "\\'") + "'")
            elif isinstance(step, int):
                out.append(f"[{step}]")
            else:
                out.append("[*]")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Comparison:
    path: ObjectPath
    operator: str  # =, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET, EXISTS
    negated: bool
    literal: Any
    predicate: Predicate = field(compare=False, repr=False)
    text_matcher: TextMatcher | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CompAnd:
    left: CompNode
    right: CompNode


@dataclass(frozen=True, slots=True)
class CompOr:
    left: CompNode
    right: CompNode


CompNode = Comparison | CompAnd | CompOr


@dataclass(frozen=True, slots=True)
class ObsSimple:
    expression: CompNode


@dataclass(frozen=True, slots=True)
class ObsAnd:
    left: ObsNode
    right: ObsNode


@dataclass(frozen=True, slots=True)
class ObsOr:
    left: ObsNode
    right: ObsNode


@dataclass(frozen=True, slots=True)
class FollowedBy:
    left: ObsNode
    right: ObsNode


@dataclass(frozen=True, slots=True)
class Within:
    inner: ObsNode
    seconds: float


@dataclass(frozen=True, slots=True)
class StartStop:
    inner: ObsNode
    start: datetime
    stop: datetime


@dataclass(frozen=True, slots=True)
class Repeats:
    inner: ObsNode
    times: int


ObsNode = ObsSimple | ObsAnd | ObsOr | FollowedBy | Within | StartStop | Repeats


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    text: str
    root: ObsNode
    parsed_fast: bool = field(default=False, compare=False)

    @property
    def single_observation(self) -> CompNode | None:
        """The comparison expression when the pattern is one bracketed observation with no qualifier.

        Only such patterns can be decided from a single event; the others need a window of events.
        """
        if isinstance(self.root, ObsSimple):
            return self.root.expression
        return None


def comparisons(node: CompNode) -> list[Comparison]:
    if isinstance(node, Comparison):
        return [node]
    return comparisons(node.left) + comparisons(node.right)


def observation_leaves(node: ObsNode) -> list[ObsSimple]:
    if isinstance(node, ObsSimple):
        return [node]
    if isinstance(node, Within | StartStop | Repeats):
        return observation_leaves(node.inner)
    return observation_leaves(node.left) + observation_leaves(node.right)
