"""What the Share page can write: an indicator, a report referencing objects, a note or an opinion on
objects. Each kind is a draft checked here (in the reader's language) and turned into one STIX object;
share.py previews and writes it the same way whatever its kind.

The objects a report, note or opinion refers to must be objects the writer sees: each is looked up
through ``core.object_view.locate`` (the one visibility check), and a hidden object is refused with
the same words as one that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from kizuna.core.errors import NotFound
from kizuna.core.object_view import locate
from kizuna.core.vocab import N_
from kizuna.policy.releasability import ISO3166_ALPHA3, build_rel_to_marking
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from kizuna.stix.patterns import stix_pattern_problem
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.web.page import Visit

KINDS: Final = ("indicator", "report", "note", "opinion")
#: The page's heading and its menu entry, by kind.
HEADINGS: Final = {
    "indicator": N_("Share an indicator"),
    "report": N_("Share a report"),
    "note": N_("Write a note"),
    "opinion": N_("Give an opinion"),
}
#: STIX 2.1's opinion-enum, weakest to strongest agreement, with what the reader sees.
OPINIONS: Final = [
    ("strongly-disagree", N_("Strongly disagree")),
    ("disagree", N_("Disagree")),
    ("neutral", N_("Neutral")),
    ("agree", N_("Agree")),
    ("strongly-agree", N_("Strongly agree")),
]
MAX_REFS = 100  # a report of more objects is an import, not a form


@dataclass
class Draft:
    kind: str = "indicator"
    name: str = ""  # an indicator's or report's name, a note's abstract
    pattern: str = ""
    description: str = ""  # description, a note's content, an opinion's explanation
    tlp: str = "amber"
    rel_to: str = ""  # ISO 3166-1 alpha-3 codes, separated by commas or spaces
    collection: str = ""
    refs: str = ""  # STIX ids the report, note or opinion is about, separated by white space or commas
    opinion: str = ""

    @classmethod
    def from_values(cls, values: Any) -> Draft:
        kind = values.get("kind", "indicator")
        return cls(kind if kind in KINDS else "indicator", values.get("name", ""), values.get("pattern", ""),
                   values.get("description", ""), values.get("tlp", "amber"), values.get("rel_to", ""),
                   values.get("collection", ""), values.get("refs", ""), values.get("opinion", ""))

    def ref_ids(self) -> list[str]:
        return list(dict.fromkeys(part for part in self.refs.replace(",", " ").split() if part))

    def codes(self) -> list[str]:
        return sorted({part.strip().upper() for part in self.rel_to.replace(",", " ").split() if part.strip()})


def problems(visit: Visit, draft: Draft, writable: list[Any]) -> list[str]:
    """Why the draft cannot be shared, in the reader's language (none: it can)."""
    found = _kind_problems(visit, draft)
    if TlpLevel.from_token(draft.tlp) is None:
        found.append(visit.gettext("Unknown TLP level."))
    unknown = [code for code in draft.codes() if code not in ISO3166_ALPHA3]
    if unknown:
        found.append(visit.gettext("Not a country code (ISO 3166 alpha-3, such as GBR or JPN): %(codes)s",
                                   codes=", ".join(unknown)))
    if not any(draft.collection in (c.id, c.alias) for c in writable):
        found.append(visit.gettext("Choose a collection this token may write to."))
    return found


def _kind_problems(visit: Visit, draft: Draft) -> list[str]:
    found = []
    if draft.kind == "indicator":
        if not draft.name.strip():
            found.append(visit.gettext("Give the indicator a name."))
        problem = stix_pattern_problem(draft.pattern) if draft.pattern.strip() else "empty"
        if problem is not None:
            found.append(visit.gettext("The pattern is not a valid STIX pattern: %(reason)s", reason=problem))
        return found
    if draft.kind == "report" and not draft.name.strip():
        found.append(visit.gettext("Give the report a name."))
    if draft.kind == "note" and not draft.description.strip():
        found.append(visit.gettext("Write the note's text."))
    if draft.kind == "opinion" and draft.opinion not in dict(OPINIONS):
        found.append(visit.gettext("Choose an opinion."))
    refs = draft.ref_ids()
    if not refs:
        found.append(visit.gettext("Name at least one object it is about."))
    elif len(refs) > MAX_REFS:
        found.append(visit.gettext("Name at most %(most)s objects.", most=MAX_REFS))
    else:
        unseen = [ref for ref in refs if not _visible(visit, ref)]
        if unseen:
            found.append(visit.gettext("No object you can see has this id: %(ids)s", ids=", ".join(unseen)))
    return found


def _visible(visit: Visit, object_id: str) -> bool:
    try:
        locate(visit.node, visit.principal, object_id)
    except NotFound:
        return False
    return True


def build(visit: Visit, draft: Draft) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The draft as a STIX object produced by the token's organisation, and the marking definitions it
    brings (a REL TO marking, when asked for). Only for a draft without problems."""
    level = TlpLevel.from_token(draft.tlp)
    assert level is not None
    definitions = [build_rel_to_marking(draft.codes())] if draft.codes() else []
    stamp = format_timestamp(now_micros())
    obj: dict[str, Any] = {
        "type": draft.kind, "spec_version": "2.1", "id": f"{draft.kind}--{uuid.uuid4()}", "created": stamp,
        "modified": stamp, "object_marking_refs": [TLP2_IDS[level], *(d["id"] for d in definitions)],
    }
    name, text = draft.name.strip(), draft.description.strip()
    if draft.kind == "indicator":
        obj.update(name=name, pattern=draft.pattern.strip(), pattern_type="stix", valid_from=stamp)
    elif draft.kind == "report":
        obj.update(name=name, published=stamp, object_refs=draft.ref_ids())
    elif draft.kind == "note":
        obj.update(content=text, object_refs=draft.ref_ids(), **({"abstract": name} if name else {}))
    else:
        obj.update(opinion=draft.opinion, object_refs=draft.ref_ids(), **({"explanation": text} if text else {}))
    if text and draft.kind in ("indicator", "report"):
        obj["description"] = text
    if visit.principal.organisation_id:
        obj["created_by_ref"] = visit.principal.organisation_id
    return obj, definitions
