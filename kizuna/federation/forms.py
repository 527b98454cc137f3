"""Two bodies under one ``(id, modified)``: is one a legitimate redaction of the other?

A partner serves each reader the form its policy allows (docs/policy.md, granular redaction and
anonymisation), so one version can reach this node *full* from one partner and *redacted* from
another.  That is not a conflict: it is the same version seen through two policies.  A conflict is a
body that changes content the other does not also hold.

``is_redaction_of(partial, full)`` holds when ``partial`` can be obtained from ``full`` only by what a
serving node does when it redacts:

* properties (and list items, and nested properties) removed, each of them governed by a granular
  marking of ``full``: a selector equal to the removed path, or above or below it (a container
  emptied by removing everything marked inside it goes too);
* ``granular_markings`` and ``lang`` entries re-addressed (every marking the partial form carries
  must still be in the full one, so a "fuller" body can never loosen a marking);
* ``created_by_ref`` replaced by another identity (an anonymising agreement);
* entries of the reference lists removed where the serving node hides the objects they name
  (``object_refs`` of a report, grouping, note, opinion or observed-data; ``observed_data_refs`` and
  ``where_sighted_refs`` of a sighting; docs/policy.md, references to hidden objects).  In a mesh such a
  copy comes back to the node that holds the full version, often its producer: it is a view of that
  version, not a conflict.

``object_marking_refs`` are never removed by redaction, so they must be equal.
"""

from __future__ import annotations

import re
from typing import Any

_INDEX = re.compile(r"\[\d+\]")
_READDRESSED = frozenset({"granular_markings"})
#: Reference lists whose entries a serving node removes when they name objects the reader may not see.
_TRIMMED: dict[str, frozenset[str]] = {
    **dict.fromkeys(("report", "grouping", "note", "opinion", "observed-data"), frozenset({"object_refs"})),
    "sighting": frozenset({"observed_data_refs", "where_sighted_refs"}),
}


def _selectors(full: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for entry in full.get("granular_markings", ()):
        if isinstance(entry, dict):
            found.extend(s for s in entry.get("selectors", ()) if isinstance(s, str))
    return found


def _marking_pairs(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(marking, selector) of each granular marking, list indices wildcarded (redaction shifts them)."""
    pairs: set[tuple[str, str]] = set()
    for entry in obj.get("granular_markings", ()):
        if isinstance(entry, dict) and isinstance(entry.get("marking_ref"), str):
            pairs.update((entry["marking_ref"], _INDEX.sub("[*]", s)) for s in entry.get("selectors", ())
                         if isinstance(s, str))
    return pairs


def _covered(path: str, selectors: list[str]) -> bool:
    """Whether removing ``path`` is explained by a granular marking (on it, above it, or inside it)."""
    return any(s == path or path.startswith(s + ".") or s.startswith(path + ".") for s in selectors)


def _pruned(partial: Any, full: Any, path: str, selectors: list[str], trimmed: frozenset[str]) -> bool:
    """Whether ``partial`` is ``full`` less marked content, and less entries of the ``trimmed`` lists."""
    if partial == full:
        return True
    if isinstance(partial, dict) and isinstance(full, dict):
        for key, value in partial.items():
            if key not in full or not _pruned(value, full[key], f"{path}.{key}" if path else key, selectors, trimmed):
                return False
        # A reference list whose every entry is hidden goes as a whole (an empty list is not STIX).
        return all(
            (f"{path}.{key}" if path else key) in trimmed or _covered(f"{path}.{key}" if path else key, selectors)
            for key in full.keys() - partial.keys()
        )
    if isinstance(partial, list) and isinstance(full, list):
        # Items keep their order; each removed item (or the parts removed from a kept one) is marked,
        # or is an entry of a reference list.
        def removable(index: int) -> bool:
            return path in trimmed or _covered(f"{path}.[{index}]", selectors)

        index = 0
        for item in partial:
            while index < len(full) and not _pruned(item, full[index], f"{path}.[{index}]", selectors, trimmed):
                if not removable(index):
                    return False
                index += 1
            if index == len(full):
                return False
            index += 1
        return all(removable(rest) for rest in range(index, len(full)))
    return False


def is_redaction_of(partial: dict[str, Any], full: dict[str, Any]) -> bool:
    """Whether ``partial`` is ``full`` as a serving node's policy would redact or anonymise it."""
    if partial == full or partial.get("id") != full.get("id"):
        return False
    if partial.get("object_marking_refs") != full.get("object_marking_refs"):
        return False
    if ("created_by_ref" in partial) != ("created_by_ref" in full):
        return False
    # Redaction only drops markings together with what they govern: every marking the partial form
    # carries must be in the full form, so a "fuller" body can never loosen a marking.
    if not _marking_pairs(partial) <= _marking_pairs(full):
        return False
    selectors = _selectors(full)
    skip = _READDRESSED | {"created_by_ref"}
    if "lang" in full:
        skip = skip | {"lang"}
    body_partial = {k: v for k, v in partial.items() if k not in skip}
    body_full = {k: v for k, v in full.items() if k not in skip}
    if body_partial == body_full:
        return partial.get("granular_markings") == full.get("granular_markings")  # anonymised only
    return _pruned(body_partial, body_full, "", selectors, _TRIMMED.get(str(full.get("type")), frozenset()))
