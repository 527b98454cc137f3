"""Which stored versions may be the first or the last version that *some* reader sees.

``match[version]=first`` and ``last`` (and the default) select among the versions the asking
principal may see (docs/policy.md, "Each principal sees its own history"), so for a reader who
may not see an object's stored last version, an earlier version is its last.  The store cannot
know the reader, but it can know which versions could ever play that part, and flag them once, on
write, so a page stays one range scan over the ``(collection, date_added)`` index:

* ``is_first``/``is_last``: the stored first and last version of the object;
* ``maybe_first``/``maybe_last``: the version may be the first/last one some reader sees.

A reader sees two neighbouring versions alike when both are decided from the same producer and
markings columns alone (``core/visibility.view``: no references, no granular markings, not an
identity or marking definition, not TLP:AMBER or above, which federation may stop per version and
per reader: AMBER received from a partner node reaches only this node's organisation and its clients).
Then whoever sees the earlier one sees the next one too, so the earlier one is never anyone's last
and the next one is never anyone's first.  Every other pair is flagged: only re-marked objects and
objects whose visibility depends on more than their columns ever cost a reader extra work.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, NamedTuple

import orjson

from kizuna.policy.dangling import embedded_references
from kizuna.policy.redact import AT_LEAST_ONE_OF
from kizuna.policy.tlp import LEVEL_BY_ANY_ID, STOPS_AT_RECIPIENT, STOPS_BEFORE_NON_CLIENTS, TlpLevel

#: Types whose visibility also depends on the objects they reference (docs/policy.md); a translation
#: (language-content) is of its object's content, and hidden with it.
REFERENCING_TYPES: Final = frozenset(
    {"relationship", "sighting", "report", "grouping", "note", "opinion", "observed-data", "language-content"}
)
#: Decided from the whole object: recipients lists, and identities (an anonymised producer is hidden).
WHOLE_OBJECT_TYPES: Final = frozenset({"marking-definition", "identity"})
#: The types the columns alone never show visible: each of their versions is parsed and decided.
UNDECIDED_TYPES: Final = REFERENCING_TYPES | WHOLE_OBJECT_TYPES
GRANULAR: Final = b'"granular_markings"'
#: Types that references hidden from a reader can hide whole (a MUST of the type needs one of them).
HIDDEN_BY_REFERENCES: Final = frozenset(
    kind for kind, groups in AT_LEAST_ONE_OF.items()
    if any(name.endswith(("_ref", "_refs")) for group in groups for name in group)
) - REFERENCING_TYPES


@lru_cache(maxsize=4096)
def stops_onward(markings: str, floor: TlpLevel | None = STOPS_AT_RECIPIENT) -> bool:
    """Whether a markings column carries a TLP level at or above ``floor``, which a relayed version does not
    travel past: AMBER+STRICT and RED for the recipient's clients, AMBER too for everyone else (None: nothing
    stops, for the recipient organisation itself)."""
    if floor is None:
        return False
    return any(LEVEL_BY_ANY_ID.get(ref, TlpLevel.CLEAR) >= floor for ref in orjson.loads(markings))


class Shape(NamedTuple):
    """What decides whether readers see two versions of one object alike."""

    version: int
    type: str
    created_by_ref: str | None
    markings: str | None
    body: bytes


class Edges(NamedTuple):
    is_first: int
    is_last: int
    maybe_first: int
    maybe_last: int


def decided_by_columns(shape: Shape) -> bool:
    """Whether every reader's verdict on this version follows from its producer and markings alone."""
    if shape.type in REFERENCING_TYPES or shape.type in WHOLE_OBJECT_TYPES:
        return False
    if shape.type in HIDDEN_BY_REFERENCES and embedded_references(orjson.loads(shape.body)):
        return False  # its references may hide it from some readers (the few versions of two types: parsed)
    if shape.markings is None:
        return True
    return GRANULAR not in shape.body and not stops_onward(shape.markings, STOPS_BEFORE_NON_CLIENTS)


def seen_alike(earlier: Shape, later: Shape) -> bool:
    """Whether every reader who sees one of two neighbouring versions sees the other."""
    return (
        earlier.created_by_ref == later.created_by_ref and earlier.markings == later.markings
        and decided_by_columns(earlier) and decided_by_columns(later)
    )


def edges(shapes: Sequence[Shape]) -> list[Edges]:
    """The flags of each version of one object; ``shapes`` ordered by version, oldest first."""
    found: list[Edges] = []
    last = len(shapes) - 1
    for index, shape in enumerate(shapes):
        first_here, last_here = index == 0, index == last
        found.append(Edges(
            int(first_here), int(last_here),
            int(first_here or not seen_alike(shapes[index - 1], shape)),
            int(last_here or not seen_alike(shape, shapes[index + 1])),
        ))
    return found
