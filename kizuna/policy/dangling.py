"""No dangling disclosure: a visible object never names an object its reader may not see.

An object's references are ids, and an id discloses: an observable's id derives from its value (a
domain's ``resolves_to_refs`` names the address it resolves to), and any id confirms that its object is
held. So once the markings have decided an object, the references it carries are decided too:

- a relationship is hidden if its source or target is hidden, a translation (language-content) if the object
  it translates is, a sighting if what it sights is;
- a sighting's hidden ``observed_data_refs`` and ``where_sighted_refs`` entries, and the hidden ``object_refs``
  entries of a report, grouping, note, opinion or observed-data, are removed, and the object is hidden if
  none remain;
- every other reference, at any depth (``resolves_to_refs``, network traffic's ``src_ref``, malware's
  ``sample_refs``, an archive extension's ``contains_refs``, an email body part's ``body_raw_ref``, custom
  ``x_*_ref`` properties, every string under such a key however nested), is removed when it names a hidden
  object; the object is hidden when what is left breaks a MUST of its type (network traffic with neither
  ``src_ref`` nor ``dst_ref``), or when the reference sits inside a granular marking (markings are not cut).

The producer (``created_by_ref``) and the markings are the policy's own and are decided with the object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kizuna.policy.decide import HIDDEN, Decision, Outcome, StixObject, ViewerPolicy
from kizuna.policy.redact import UNREMOVABLE, Path, remove_paths

__all__ = ["embedded_references", "filter_batch", "hide_dangling"]

_REF_LIST_TYPES: Final = frozenset({"report", "grouping", "note", "opinion", "observed-data"})
#: The references each referencing type is decided by (above); its other references are embedded ones.
DECIDING_REFS: Final[Mapping[str, frozenset[str]]] = {
    "relationship": frozenset({"source_ref", "target_ref"}),
    "language-content": frozenset({"object_ref"}),
    "sighting": frozenset({"sighting_of_ref", "observed_data_refs", "where_sighted_refs"}),
    **{kind: frozenset({"object_refs"}) for kind in _REF_LIST_TYPES},
}
#: Top-level properties that are not references to decide: the producer and the markings (the policy's own).
_OWN: Final = frozenset({"created_by_ref", "object_marking_refs"})
_GRANULAR_OWN: Final = frozenset({"marking_ref", "selectors", "lang"})


def hide_dangling(
    obj: StixObject, decision: Decision, is_visible: Callable[[str], bool], embeds: bool = True,
) -> Decision:
    """The decision on ``obj`` once the rule above is applied on top of ``decision``.

    ``is_visible(id)`` answers whether the viewer may see (any version of) the referenced object. ``embeds``
    False: the caller knows ``obj`` embeds no reference but those its type is decided by (a stored version's
    flag, store/embedded.py), and they alone are looked at.
    """
    view = decision.view(obj)
    if view is None:
        return decision
    stix_type = view.get("type")
    removals: list[Path] = []
    if stix_type == "relationship":
        if not (is_visible(str(view.get("source_ref"))) and is_visible(str(view.get("target_ref")))):
            return HIDDEN
    elif stix_type == "language-content":
        if not is_visible(str(view.get("object_ref"))):
            return HIDDEN
    elif stix_type == "sighting":
        if not is_visible(str(view.get("sighting_of_ref"))):
            return HIDDEN
        for name in ("observed_data_refs", "where_sighted_refs"):
            removals.extend(_hidden_items(view, name, is_visible))
    elif stix_type in _REF_LIST_TYPES:
        removals.extend(_hidden_items(view, "object_refs", is_visible))
    if embeds:
        deciding = DECIDING_REFS.get(str(stix_type), frozenset())
        removals.extend(path for path, ref in embedded_references(view, deciding) if not is_visible(ref))
    if not removals:
        return decision
    if any(path[0] in UNREMOVABLE for path in removals):
        return HIDDEN  # a reference inside a granular marking: the markings are never cut
    redacted = remove_paths(view, removals)
    if redacted is None:
        return HIDDEN
    return Decision(Outcome.REDACTED, redacted)


def embedded_references(obj: StixObject, deciding: frozenset[str] = frozenset()) -> list[tuple[Path, str]]:
    """(path, id) of every reference ``obj`` embeds: each string at any depth under a key ending in ``_ref`` or
    ``_refs`` (however it is nested: lists of lists, dictionaries), but for the producer, the object's markings,
    each granular marking's own marking and the top-level ``deciding`` references of its type."""
    found: list[tuple[Path, str]] = []
    for key, value in obj.items():
        if key in _OWN or key in deciding:
            continue
        if key == "granular_markings":
            # A granular marking's marking_ref is a marking, decided with the object; anything else is not.
            for index, entry in enumerate(value if isinstance(value, list) else ()):
                for inner, item in entry.items() if isinstance(entry, dict) else ():
                    if inner not in _GRANULAR_OWN:
                        _collect(inner, item, (key, index), found, False)
            continue
        _collect(key, value, (), found, False)
    return found


def _collect(key: str, value: Any, path: Path, found: list[tuple[Path, str]], named: bool) -> None:
    _walk(value, (*path, key), found, named or key.endswith(("_ref", "_refs")))


def _walk(value: Any, path: Path, found: list[tuple[Path, str]], named: bool) -> None:
    if isinstance(value, str):
        if named:
            found.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(key, item, path, found, named)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, (*path, index), found, named)


def _hidden_items(view: StixObject, name: str, is_visible: Callable[[str], bool]) -> list[Path]:
    refs = view.get(name)
    if not isinstance(refs, list):
        return []
    return [(name, index) for index, ref in enumerate(refs) if not is_visible(str(ref))]


def filter_batch(
    policy: ViewerPolicy,
    objects: Sequence[StixObject],
    is_visible_elsewhere: Callable[[str], bool] | None = None,
) -> list[StixObject]:
    """Decide a batch and drop dangling references.

    Ids decided visible within the batch count as visible; other ids are asked of
    ``is_visible_elsewhere`` (e.g. a store lookup decided with the same policy); without it they count
    as hidden, which is the safe default.
    """
    decisions = [policy.decide(obj) for obj in objects]
    visible_ids = {str(obj.get("id")) for obj, d in zip(objects, decisions, strict=True) if d.visible}

    def is_visible(ref: str) -> bool:
        if ref in visible_ids:
            return True
        return is_visible_elsewhere(ref) if is_visible_elsewhere is not None else False

    out: list[StixObject] = []
    for obj, decision in zip(objects, decisions, strict=True):
        final = hide_dangling(obj, decision, is_visible)
        view = final.view(obj)
        if view is not None:
            out.append(view)
    return out
