"""Property removal that keeps an object valid STIX 2.1.

Granular-marking selectors (§7.2.3) name properties, dictionary keys and list items (``labels.[1]``).
Removing content shifts list indices and can empty containers, so after a removal every remaining
selector is re-addressed, selectors into removed content are dropped, and containers left empty are
removed too (STIX forbids empty lists). Removing a property the object type requires makes the whole
object unservable: ``remove_paths`` then returns None and the caller hides the object.

Unchanged subtrees are shared with the input, not copied: callers treat objects as immutable.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from kizuna.numerals import whole_number

Component = str | int
Path = tuple[Component, ...]

_SDO_REQUIRED: Final = ("type", "spec_version", "id", "created", "modified")
_SCO_REQUIRED: Final = ("type", "id")

#: Properties that must survive redaction for the object to stay valid (§3-§7 per type).
REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "attack-pattern": (*_SDO_REQUIRED, "name"),
    "campaign": (*_SDO_REQUIRED, "name"),
    "course-of-action": (*_SDO_REQUIRED, "name"),
    "grouping": (*_SDO_REQUIRED, "context", "object_refs"),
    "identity": (*_SDO_REQUIRED, "name"),
    "incident": (*_SDO_REQUIRED, "name"),
    "indicator": (*_SDO_REQUIRED, "pattern", "pattern_type", "valid_from"),
    "infrastructure": (*_SDO_REQUIRED, "name"),
    "intrusion-set": (*_SDO_REQUIRED, "name"),
    "location": _SDO_REQUIRED,
    "malware": (*_SDO_REQUIRED, "is_family"),
    "malware-analysis": (*_SDO_REQUIRED, "product"),
    "note": (*_SDO_REQUIRED, "content", "object_refs"),
    "observed-data": (*_SDO_REQUIRED, "first_observed", "last_observed", "number_observed"),
    "opinion": (*_SDO_REQUIRED, "opinion", "object_refs"),
    "report": (*_SDO_REQUIRED, "name", "published", "object_refs"),
    "threat-actor": (*_SDO_REQUIRED, "name"),
    "tool": (*_SDO_REQUIRED, "name"),
    "vulnerability": (*_SDO_REQUIRED, "name"),
    "relationship": (*_SDO_REQUIRED, "relationship_type", "source_ref", "target_ref"),
    "sighting": (*_SDO_REQUIRED, "sighting_of_ref"),
    "marking-definition": ("type", "spec_version", "id", "created"),
    "language-content": (*_SDO_REQUIRED, "object_ref", "contents"),
    "extension-definition": (
        *_SDO_REQUIRED, "created_by_ref", "name", "schema", "version", "extension_types",
    ),
    "autonomous-system": (*_SCO_REQUIRED, "number"),
    "directory": (*_SCO_REQUIRED, "path"),
    "domain-name": (*_SCO_REQUIRED, "value"),
    "email-addr": (*_SCO_REQUIRED, "value"),
    "email-message": (*_SCO_REQUIRED, "is_multipart"),
    "ipv4-addr": (*_SCO_REQUIRED, "value"),
    "ipv6-addr": (*_SCO_REQUIRED, "value"),
    "mac-addr": (*_SCO_REQUIRED, "value"),
    "mutex": (*_SCO_REQUIRED, "name"),
    "network-traffic": (*_SCO_REQUIRED, "protocols"),
    "software": (*_SCO_REQUIRED, "name"),
    "url": (*_SCO_REQUIRED, "value"),
}

#: "At least one of these groups must be fully present" rules.
AT_LEAST_ONE_OF: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "location": (("region",), ("country",), ("latitude", "longitude")),
    "malware-analysis": (("result",), ("analysis_sco_refs",)),
    "observed-data": (("objects",), ("object_refs",)),
    "file": (("hashes",), ("name",)),
    "network-traffic": (("src_ref",), ("dst_ref",)),
    "artifact": (("payload_bin",), ("url",)),
}

#: Properties Kizuna never removes by redaction: they carry the markings themselves.
UNREMOVABLE: Final = frozenset({"object_marking_refs", "granular_markings"})


_PARSED: dict[str, Path | None] = {}


def parse_selector(selector: str) -> Path | None:
    """``external_references.[0].url`` -> ``("external_references", 0, "url")``; None if malformed."""
    try:
        return _PARSED[selector]
    except KeyError:
        pass
    parsed = _parse_selector(selector)
    if len(_PARSED) >= 65536:
        _PARSED.clear()
    _PARSED[selector] = parsed
    return parsed


def _parse_selector(selector: str) -> Path | None:
    if not selector:
        return None
    path: list[Component] = []
    for part in selector.split("."):
        if part.startswith("[") and part.endswith("]"):
            inner = part[1:-1]
            index = whole_number(inner)
            if index is None:
                return None
            path.append(index)
        elif part:
            path.append(part)
        else:
            return None
    return tuple(path)


def format_selector(path: Path) -> str:
    return ".".join(f"[{c}]" if isinstance(c, int) else c for c in path)


def required_properties(stix_type: str) -> tuple[str, ...]:
    if stix_type in REQUIRED:
        return REQUIRED[stix_type]
    if stix_type.startswith("x-"):
        return ("type", "id")
    return _SCO_REQUIRED


def _nested_item_valid(path: Path, item: Mapping[str, Any]) -> bool:
    """Whether a list item that lost properties is still a valid sub-object of its kind."""
    if len(path) == 2 and isinstance(path[1], int):
        if path[0] == "external_references":
            return "source_name" in item and any(k in item for k in ("description", "url", "external_id"))
        if path[0] == "kill_chain_phases":
            return "kill_chain_name" in item and "phase_name" in item
        if path[0] == "body_multipart":  # an email body part (STIX 2.1 §6.6.2): one of the two is required
            return "body" in item or "body_raw_ref" in item
    if path == ("extensions", "archive-ext"):  # §6.7.2: an archive names what it contains, or is not said
        return "contains_refs" in item
    return True


class _Removal:
    """State of one pruning pass, all in the input object's coordinates."""

    __slots__ = ("removed", "shifts")

    def __init__(self) -> None:
        self.removed: set[Path] = set()
        #: list path -> sorted indices removed from that list.
        self.shifts: dict[Path, list[int]] = {}


_REMOVE: Final = object()


def _build_trie(paths: Iterable[Path]) -> dict[Component, Any]:
    trie: dict[Component, Any] = {}
    for path in sorted(set(paths), key=len):
        node: Any = trie
        for component in path[:-1]:
            nxt = node.get(component)
            if nxt is _REMOVE:
                break
            if nxt is None:
                nxt = node[component] = {}
            node = nxt
        else:
            node[path[-1]] = _REMOVE
    return trie


def _prune(value: Any, trie: dict[Component, Any], path: Path, state: _Removal) -> tuple[Any, bool]:
    # Walks the trie, not the value: a redaction names a few properties of a large object.
    if isinstance(value, dict):
        out: dict[str, Any] = dict(value)
        for key, sub in trie.items():
            if not isinstance(key, str) or key not in out:
                continue
            child = (*path, key)
            if sub is not _REMOVE:
                new_item, keep = _prune(out[key], sub, child, state)
                if keep:
                    out[key] = new_item
                    continue
            del out[key]
            state.removed.add(child)
        keep_dict = bool(out) or not value
        return out, keep_dict and _nested_item_valid(path, out)
    if isinstance(value, list):
        size = len(value)
        named = sorted(key for key in trie if type(key) is int and key < size)
        if not named:
            return list(value), True
        replaced: dict[int, Any] = {}
        gone: list[int] = []
        for index in named:
            sub = trie[index]
            child = (*path, index)
            if sub is not _REMOVE:
                new_item, keep = _prune(value[index], sub, child, state)
                if keep:
                    replaced[index] = new_item
                    continue
            state.removed.add(child)
            gone.append(index)
        if gone:
            state.shifts[path] = gone
            dropped = set(gone)
            items = [replaced.get(index, item) for index, item in enumerate(value) if index not in dropped]
        else:
            items = [replaced.get(index, item) for index, item in enumerate(value)]
        return items, bool(items) or not value
    # A selector that reaches below a scalar names nothing that exists; nothing to remove.
    return value, True


def _top_level_items(paths: list[Path]) -> tuple[tuple[str, tuple[int, ...] | None], ...] | None:
    """The paths as (top-level property, None for all of it or its item indices), or None when some path is
    deeper or names a dictionary key below the top level (then the trie prunes)."""
    by_name: dict[str, set[int] | None] = {}
    for path in paths:
        name = path[0]
        if not isinstance(name, str) or len(path) > 2:
            return None
        if len(path) == 1:
            by_name[name] = None  # the whole property goes, whatever else names its items
            continue
        index = path[1]
        if type(index) is not int:
            return None
        indices = by_name.setdefault(name, set())
        if indices is not None:
            indices.add(index)
    return tuple((name, None if indices is None else tuple(sorted(indices))) for name, indices in by_name.items())


#: What a top-level item removal cut: (property, the item indices gone or None for all of it, whether any of
#: the list is left), in the plan's order.
_Cuts = tuple[tuple[str, tuple[int, ...] | None, bool], ...]


def _cut_items(obj: Mapping[str, Any], items: tuple[tuple[str, tuple[int, ...] | None], ...]
               ) -> tuple[dict[str, Any], _Cuts]:
    """A copy of ``obj`` without the top-level properties and list items ``items`` names (``_top_level_items``),
    and what was cut."""
    out = dict(obj)
    cuts: list[tuple[str, tuple[int, ...] | None, bool]] = []
    for name, indices in items:
        if name not in out:
            continue
        if indices is None:
            del out[name]
            cuts.append((name, None, False))
            continue
        value = out[name]
        if not isinstance(value, list):
            continue  # an index into a dictionary or below a scalar names nothing that exists
        size = len(value)
        gone = indices if indices[-1] < size else tuple(index for index in indices if index < size)
        if not gone:
            continue
        if len(gone) == 1:
            kept = value[:gone[0]] + value[gone[0] + 1:]
        else:
            dropped = set(gone)
            kept = [item for index, item in enumerate(value) if index not in dropped]
        if kept:
            out[name] = kept
        else:
            del out[name]  # STIX forbids an empty list
        cuts.append((name, gone, bool(kept)))
    return out, tuple(cuts)


def _note_cuts(cuts: _Cuts, state: _Removal) -> None:
    """Record ``cuts`` in a pruning pass's state, as ``_prune`` records the same removal."""
    for name, gone, kept in cuts:
        if gone is not None:
            state.removed.update((name, index) for index in gone)
            state.shifts[(name,)] = list(gone)
        if not kept:
            state.removed.add((name,))


def _prune_items(obj: Mapping[str, Any], items: tuple[tuple[str, tuple[int, ...] | None], ...],
                 state: _Removal) -> dict[str, Any]:
    """``_prune`` for top-level properties and items of top-level lists only, without walking a trie."""
    out, cuts = _cut_items(obj, items)
    _note_cuts(cuts, state)
    return out


def _remap(path: Path, state: _Removal) -> Path | None:
    """Where ``path`` (input coordinates) points after the removal; None if its content is gone."""
    removed = state.removed
    if (path[0],) in removed:
        return None
    if len(path) > 1:
        for end in range(2, len(path) + 1):
            if path[:end] in removed:
                return None
    if not state.shifts:
        return path
    out = list(path)
    for position, component in enumerate(path):
        if isinstance(component, int):
            gone = state.shifts.get(path[:position])
            if gone:
                out[position] = component - bisect_left(gone, component)
    return tuple(out)


def _rewrite_granular(entries: Any, state: _Removal) -> list[dict[str, Any]]:
    rewritten: list[dict[str, Any]] = []
    if not isinstance(entries, list):
        return rewritten
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        selectors: list[str] = []
        for selector in entry.get("selectors") or ():
            parsed = parse_selector(selector) if isinstance(selector, str) else None
            if parsed is None:
                continue
            moved = _remap(parsed, state)
            if moved is not None:
                text = selector if moved == parsed else format_selector(moved)
                if text not in selectors:
                    selectors.append(text)
        if selectors:
            rewritten.append({**entry, "selectors": selectors})
    return rewritten


@lru_cache(maxsize=1024)  # custom types are named by their producers: bounded
def _required_set(stix_type: str) -> frozenset[str]:
    return frozenset(required_properties(stix_type))


def satisfies_required(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` still has every property its type requires."""
    stix_type = str(obj.get("type", ""))
    if not obj.keys() >= _required_set(stix_type):
        return False
    groups = AT_LEAST_ONE_OF.get(stix_type)
    if groups and not any(all(name in obj for name in group) for group in groups):
        return False
    return True


def remove_paths(obj: Mapping[str, Any], paths: Iterable[Path]) -> dict[str, Any] | None:
    """Copy of ``obj`` without ``paths`` (input coordinates), granular markings re-addressed.

    Returns None when the result would lack a required property, i.e. the object must be hidden.
    """
    return RedactionPlan(paths).apply(obj)


class RedactionPlan:
    """The removal of some paths, prepared once and applied to any number of objects.

    A viewer's verdict on a granular-marking shape (producer, object markings, selectors with their markings) is
    the same for every object of that shape, so the policy keeps one plan per shape. ``apply(obj, same_entries=
    True)`` promises that ``obj``'s granular markings are exactly those of the shape the plan was made for: the
    re-addressed markings then depend only on what the removal found, and are remembered per outcome.
    """

    __slots__ = ("_granular", "_items", "_item_outcomes", "_names", "_trie", "paths")

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths: tuple[Path, ...] = tuple(paths)
        wanted = [p for p in self.paths if p and p[0] not in UNREMOVABLE]
        #: whole top-level properties only (no nesting, no index shifts), else None and the trie
        self._names = frozenset(p[0] for p in wanted) if all(len(p) == 1 for p in wanted) else None
        #: otherwise, when every path is a top-level property or an item of one (``labels.[1]``, the common
        #: granular redaction): (property, None to remove it whole, or the item indices), as the trie would prune
        self._items = _top_level_items(wanted) if self._names is None else None
        self._trie = _build_trie(wanted) if self._names is None and self._items is None else {}
        self._granular: dict[Any, list[dict[str, Any]]] = {}
        #: for ``_items`` plans: what was removed (list property, items gone, whether the list is left) -> the
        #: re-addressed granular markings of that outcome (see ``_apply_items``)
        self._item_outcomes: dict[_Cuts, list[dict[str, Any]]] = {}

    def __bool__(self) -> bool:
        return bool(self.paths)

    def apply(self, obj: Mapping[str, Any], same_entries: bool = False) -> dict[str, Any] | None:
        if same_entries and self._items is not None and "granular_markings" in obj:
            return self._apply_items(obj)
        state = _Removal()
        names = self._names
        if names is not None:
            if not names:
                return dict(obj)
            pruned = {k: v for k, v in obj.items() if k not in names}
            state.removed = {(k,) for k in names if k in obj}
        elif self._items is not None:
            pruned = _prune_items(obj, self._items, state)
        else:
            pruned, _ = _prune(obj, self._trie, (), state)
        if not state.removed:
            return dict(obj)
        if not satisfies_required(pruned):
            return None
        if "granular_markings" in obj:
            if same_entries:
                key = (frozenset(state.removed), tuple((k, tuple(v)) for k, v in state.shifts.items()))
                granular = self._granular.get(key)
                if granular is None:
                    granular = _rewrite_granular(obj["granular_markings"], state)
                    if len(self._granular) < 64:
                        self._granular[key] = granular
            else:
                granular = _rewrite_granular(obj["granular_markings"], state)
            if granular:
                pruned["granular_markings"] = granular
            else:
                del pruned["granular_markings"]
        return pruned

    def _apply_items(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """``apply`` of a plan that removes top-level properties and items of top-level lists (``labels.[1]``,
        the usual granular redaction), for an object whose granular markings are the shape's: the same result
        as the general path, with the re-addressed markings worked out once per outcome. A redacted read-out
        applies this to a quarter of its rows, so the per-row work is one copy and the lists' cuts."""
        assert self._items is not None
        out, cuts = _cut_items(obj, self._items)
        if not cuts:
            return out
        if not satisfies_required(out):
            return None
        granular = self._item_outcomes.get(cuts)
        if granular is None:
            state = _Removal()
            _note_cuts(cuts, state)
            granular = _rewrite_granular(obj["granular_markings"], state)
            if len(self._item_outcomes) < 64:
                self._item_outcomes[cuts] = granular
        if granular:
            out["granular_markings"] = granular
        else:
            del out["granular_markings"]
        return out
