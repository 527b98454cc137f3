"""Traffic Light Protocol markings: the OASIS TLP 2.0 objects, TLP 1.0 ids and alias normalisation.

Kizuna stores and emits TLP only under the five OASIS TLP 2.0 marking-definition ids. Other platforms
use other ids for the same meaning (OpenCTI puts TLP:CLEAR under the TLP 1.0 WHITE id and mints its own
AMBER+STRICT id; MISP exports ``tlp:`` tags as labels), so ingest rewrites those aliases and returns a
record of every rewrite for the audit trail.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final


class TlpLevel(enum.IntEnum):
    """TLP 2.0 levels, ordered from least to most restrictive."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """The FIRST label, which stays untranslated in every language (e.g. ``TLP:AMBER+STRICT``)."""
        return "TLP:" + self.token.upper()

    @property
    def token(self) -> str:
        """The value of the ``tlp_2_0`` extension property (e.g. ``amber+strict``)."""
        return _TOKENS[self]

    @classmethod
    def from_token(cls, token: str) -> TlpLevel | None:
        """Parse ``clear``/``white``/``green``/``amber``/``amber+strict``/``red`` in any case; else None."""
        return _LEVEL_BY_TOKEN.get(token.strip().lower())


_TOKENS: Final = {
    TlpLevel.CLEAR: "clear",
    TlpLevel.GREEN: "green",
    TlpLevel.AMBER: "amber",
    TlpLevel.AMBER_STRICT: "amber+strict",
    TlpLevel.RED: "red",
}
_LEVEL_BY_TOKEN: Final = {
    **{token: level for level, token in _TOKENS.items()},
    "white": TlpLevel.CLEAR,
    "amber_strict": TlpLevel.AMBER_STRICT,
    "amber-strict": TlpLevel.AMBER_STRICT,
}

TLP2_EXTENSION_ID: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
#: The creator the OASIS TLP 2.0 extension definition names (``created_by_ref``): CISA, the US Cybersecurity and
#: Infrastructure Security Agency, which wrote the TLP 2.0 and PAP extensions of cti-stix-common-objects. No node
#: holds that identity object, so listings name it from here.
TLP2_EXTENSION_CREATOR: Final = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01"

#: TLP 2.0 for a version this node received from a partner node (it is the recipient organisation): from
#: AMBER+STRICT up, it goes no further than this node's organisation ...
STOPS_AT_RECIPIENT: Final = TlpLevel.AMBER_STRICT
#: ... and from AMBER up, no further than this node's organisation and its clients ("Recipients may share
#: TLP:AMBER information with members of their own organization and its clients").
STOPS_BEFORE_NON_CLIENTS: Final = TlpLevel.AMBER

#: The OASIS TLP 2.0 marking-definition ids: the only TLP ids Kizuna emits.
TLP2_IDS: Final[Mapping[TlpLevel, str]] = {
    TlpLevel.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TlpLevel.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TlpLevel.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TlpLevel.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TlpLevel.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

#: The TLP 1.0 ids predefined by STIX 2.1 §7.2.1.4 (WHITE is the same level as TLP 2.0 CLEAR).
TLP1_IDS: Final[Mapping[str, TlpLevel]] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TlpLevel.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TlpLevel.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TlpLevel.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TlpLevel.RED,
}

#: OpenCTI's fixed id for TLP:AMBER+STRICT, used by its platform and connectors (there is no TLP 1.0
#: equivalent, so OpenCTI derived one of its own).
OPENCTI_AMBER_STRICT_ID: Final = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"

#: Every well-known TLP id that is not an OASIS TLP 2.0 id, with the level it stands for.
KNOWN_ALIAS_IDS: Final[Mapping[str, TlpLevel]] = {**TLP1_IDS, OPENCTI_AMBER_STRICT_ID: TlpLevel.AMBER_STRICT}

LEVEL_BY_OASIS_ID: Final[Mapping[str, TlpLevel]] = {mid: level for level, mid in TLP2_IDS.items()}

#: Level for every TLP id Kizuna recognises, OASIS or alias.
LEVEL_BY_ANY_ID: Final[Mapping[str, TlpLevel]] = {**KNOWN_ALIAS_IDS, **LEVEL_BY_OASIS_ID}


def _load(name: str) -> list[dict[str, Any]]:
    text = resources.files("kizuna.policy").joinpath("data", name).read_text(encoding="utf-8")
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


_TLP2_OBJECTS: Final = _load("tlp2-markings.json")
_TLP1_OBJECTS: Final = _load("tlp1-markings.json")


def tlp2_extension_definition() -> dict[str, Any]:
    """A fresh copy of the OASIS TLP 2.0 extension-definition object, as published upstream."""
    return json.loads(json.dumps(next(o for o in _TLP2_OBJECTS if o["type"] == "extension-definition")))


def tlp2_marking_definitions() -> list[dict[str, Any]]:
    """Fresh copies of the five OASIS TLP 2.0 marking definitions, CLEAR first."""
    by_id = {o["id"]: o for o in _TLP2_OBJECTS}
    return [json.loads(json.dumps(by_id[TLP2_IDS[level]])) for level in TlpLevel]


def tlp2_marking_definition(level: TlpLevel) -> dict[str, Any]:
    """A fresh copy of the OASIS marking definition for one level."""
    return tlp2_marking_definitions()[int(level)]


def shipped_objects() -> list[dict[str, Any]]:
    """Objects every node ships: the TLP 2.0 extension-definition and the five TLP 2.0 markings."""
    return [tlp2_extension_definition(), *tlp2_marking_definitions()]


def tlp1_marking_definitions() -> list[dict[str, Any]]:
    """The four TLP 1.0 marking definitions of STIX 2.1 §7.2.1.4 (recognised on input, never emitted)."""
    return json.loads(json.dumps(_TLP1_OBJECTS))


def oasis_id(level: TlpLevel) -> str:
    return TLP2_IDS[level]


def level_of_marking_definition(obj: Mapping[str, Any]) -> TlpLevel | None:
    """The TLP level a marking-definition object expresses, whatever id it carries; None if it is no TLP.

    Recognised shapes: the TLP 2.0 property extension; the STIX 2.1 ``definition_type: tlp`` form (also
    when it carries TLP 2.0 words such as ``clear`` or ``amber+strict``, as OpenCTI and MISP write it);
    OpenCTI's statement-shaped marking with ``x_opencti_definition_type: TLP``.
    """
    if obj.get("type") != "marking-definition":
        return None
    extensions = obj.get("extensions")
    if isinstance(extensions, Mapping):
        tlp2 = extensions.get(TLP2_EXTENSION_ID)
        if isinstance(tlp2, Mapping) and isinstance(tlp2.get("tlp_2_0"), str):
            return TlpLevel.from_token(tlp2["tlp_2_0"])
    definition = obj.get("definition")
    if obj.get("definition_type") == "tlp" and isinstance(definition, Mapping):
        token = definition.get("tlp")
        if isinstance(token, str):
            return TlpLevel.from_token(token)
    if str(obj.get("x_opencti_definition_type", "")).upper() == "TLP":
        label = obj.get("x_opencti_definition") or obj.get("name")
        if isinstance(label, str) and label.upper().startswith("TLP:"):
            return TlpLevel.from_token(label[4:])
    return None


def misp_tag_level(tag: str) -> TlpLevel | None:
    """Level for a MISP ``tlp:`` taxonomy tag (``tlp:white``, ``tlp:amber+strict`` …); None otherwise.

    ``tlp:ex:chr``, ``tlp:unclear`` and other values outside TLP 2.0 are not TLP levels and give None.
    """
    tag = tag.strip()
    if not tag.lower().startswith("tlp:"):
        return None
    return TlpLevel.from_token(tag[4:].strip('"'))


def misp_tag_restriction(tag: str) -> TlpLevel | None:
    """The TLP a MISP tag restricts its record to: its level for a TLP 2.0 ``tlp:`` tag, TLP:RED for a ``tlp:`` tag
    of no TLP 2.0 level (``tlp:ex:chr``, ``tlp:unclear``, a typo: a restriction Kizuna cannot read must not
    become none at all), None for any other tag."""
    if not tag.strip().lower().startswith("tlp:"):
        return None
    level = misp_tag_level(tag)
    return TlpLevel.RED if level is None else level  # not `or`: TLP:CLEAR is level 0


@dataclass(frozen=True, slots=True)
class Normalisation:
    """One rewrite done at ingest, kept so the node can record what it changed and why."""

    object_id: str
    field: str
    old: str
    new: str
    reason: str


class TlpAliasTable:
    """Maps non-OASIS TLP marking ids to the OASIS ids.

    Starts with the well-known aliases and learns more from marking-definition objects met at ingest
    (e.g. a MISP export that minted its own id for ``definition: {tlp: amber+strict}``).
    """

    __slots__ = ("_aliases",)

    def __init__(self, extra: Mapping[str, TlpLevel] | None = None) -> None:
        self._aliases: dict[str, TlpLevel] = dict(KNOWN_ALIAS_IDS)
        if extra:
            self._aliases.update(extra)

    def level_of_alias(self, marking_id: str) -> TlpLevel | None:
        return self._aliases.get(marking_id)

    def aliases(self) -> dict[str, TlpLevel]:
        return dict(self._aliases)

    def learn(self, marking_definition: Mapping[str, Any]) -> TlpLevel | None:
        """Register ``marking_definition`` as an alias if it is a TLP marking under a non-OASIS id."""
        marking_id = marking_definition.get("id")
        if not isinstance(marking_id, str) or marking_id in LEVEL_BY_OASIS_ID:
            return None
        level = level_of_marking_definition(marking_definition)
        if level is None:
            return self._aliases.get(marking_id)
        known = self._aliases.get(marking_id)
        # Two readings of one id: keep the stricter, so a later object can never loosen an alias.
        if known is not None and known > level:
            return known
        self._aliases[marking_id] = level
        return level

    def replace_marking_definition(
        self, obj: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Normalisation | None]:
        """Return the OASIS object that replaces a TLP alias marking-definition, or ``obj`` unchanged."""
        level = self.learn(obj)
        if level is None:
            return dict(obj), None
        oasis = tlp2_marking_definition(level)
        return oasis, Normalisation(
            object_id=str(obj["id"]),
            field="id",
            old=str(obj["id"]),
            new=oasis["id"],
            reason=f"marking-definition {obj.get('name', obj['id'])!s} is an alias of {level.label}",
        )

    def normalise_object(
        self, obj: Mapping[str, Any], *, misp_labels: bool = True
    ) -> tuple[dict[str, Any], list[Normalisation]]:
        """Rewrite TLP alias ids in ``object_marking_refs`` and ``granular_markings`` to OASIS ids.

        With ``misp_labels`` a ``tlp:`` label (how MISP exports its TLP tags) also adds the OASIS
        marking to ``object_marking_refs``; the label itself is kept, it is the producer's content.
        Marking-definition objects that are aliases must go through ``replace_marking_definition``.
        Returns a new dict (``obj`` is not mutated) and the list of rewrites done.
        """
        out = dict(obj)
        done: list[Normalisation] = []
        object_id = str(obj.get("id", ""))
        refs = obj.get("object_marking_refs")
        new_refs: list[str] = []
        if isinstance(refs, list):
            for ref in refs:
                mapped = self._map_ref(object_id, "object_marking_refs", ref, done)
                if mapped not in new_refs:
                    new_refs.append(mapped)
        if misp_labels and isinstance(obj.get("labels"), list):
            for label in obj["labels"]:
                level = misp_tag_level(label) if isinstance(label, str) else None
                if level is None:
                    continue
                target = TLP2_IDS[level]
                if target not in new_refs:
                    new_refs.append(target)
                    done.append(Normalisation(object_id, "object_marking_refs", f"label {label}", target,
                                              f"MISP tag {label} expressed as {level.label} marking"))
        if new_refs:
            out["object_marking_refs"] = new_refs
        granular = obj.get("granular_markings")
        if isinstance(granular, list):
            rewritten = []
            for entry in granular:
                if isinstance(entry, Mapping) and isinstance(entry.get("marking_ref"), str):
                    mapped = self._map_ref(object_id, "granular_markings", entry["marking_ref"], done)
                    if mapped != entry["marking_ref"]:
                        entry = {**entry, "marking_ref": mapped}
                rewritten.append(entry)
            out["granular_markings"] = rewritten
        return out, done

    def _map_ref(self, object_id: str, field: str, ref: str, done: list[Normalisation]) -> str:
        level = self._aliases.get(ref)
        if level is None:
            return ref
        target = TLP2_IDS[level]
        done.append(Normalisation(object_id, field, ref, target, f"{ref} is an alias of {level.label}"))
        return target


def normalise_objects(
    objects: Iterable[Mapping[str, Any]], table: TlpAliasTable | None = None
) -> tuple[list[dict[str, Any]], list[Normalisation]]:
    """Normalise a batch (e.g. one bundle): alias marking-definitions first, then every reference.

    Alias marking-definitions are replaced by their OASIS object; when several aliases collapse onto one
    OASIS object it is emitted once. The table learns from the batch, so pass the node's table to keep
    what it learnt.
    """
    table = table if table is not None else TlpAliasTable()
    items = list(objects)
    for obj in items:
        if obj.get("type") == "marking-definition":
            table.learn(obj)
    out: list[dict[str, Any]] = []
    done: list[Normalisation] = []
    emitted: set[str] = set()
    for obj in items:
        if obj.get("type") == "marking-definition":
            replaced, record = table.replace_marking_definition(obj)
            if record is not None:
                done.append(record)
                if replaced["id"] in emitted:
                    continue
                emitted.add(replaced["id"])
                out.append(replaced)
                continue
            if replaced.get("id") in LEVEL_BY_OASIS_ID:
                if replaced["id"] in emitted:
                    continue
                emitted.add(replaced["id"])
                canonical = tlp2_marking_definition(LEVEL_BY_OASIS_ID[replaced["id"]])
                if replaced != canonical:
                    # The OASIS ids are fixed objects; a differing copy is replaced, never believed.
                    done.append(Normalisation(replaced["id"], "*", "non-canonical content", replaced["id"],
                                              "OASIS TLP 2.0 marking replaced by the canonical object"))
                out.append(canonical)
                continue
        normalised, records = table.normalise_object(obj)
        done.extend(records)
        out.append(normalised)
    return out, done
