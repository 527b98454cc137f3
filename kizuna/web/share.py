"""Share: write a new indicator from the console, with its TLP and releasability, after a plain-language
preview of which partners will receive it.

The draft is judged and stored by the same code as everything else: the pattern by the ingest's own
validator (`stix.patterns.stix_pattern_problem`, also behind the as-you-type check), the preview by
`Node.share_preview` (the policy engine, per partner, with a reason code the page translates), and the
write by `Node.add_objects` with the signed-in token's write right, so it is validated, marked,
audited and federated like a TAXII POST. The indicator is produced by the token's organisation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import JSONResponse, Response

from kizuna.core.errors import Forbidden
from kizuna.core.listing import readable_collections
from kizuna.policy.preview import REASONS, Verdict
from kizuna.policy.releasability import ISO3166_ALPHA3, build_rel_to_marking
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from kizuna.stix.patterns import stix_pattern_problem
from kizuna.stix.timestamps import format_timestamp, now_micros
from kizuna.web.page import Visit

LEVELS: Final = [(level.token, level.label) for level in TlpLevel]


@dataclass
class Draft:
    name: str = ""
    pattern: str = ""
    description: str = ""
    tlp: str = "amber"
    rel_to: str = ""  # ISO 3166-1 alpha-3 codes, separated by commas or spaces
    collection: str = ""


def _writable(visit: Visit) -> list[Any]:
    return [c for c in readable_collections(visit.node, visit.principal) if visit.principal.can_write(c)]


def _problems(visit: Visit, draft: Draft, writable: list[Any]) -> list[str]:
    problems = []
    if not draft.name.strip():
        problems.append(visit.gettext("Give the indicator a name."))
    found = stix_pattern_problem(draft.pattern) if draft.pattern.strip() else "empty"
    if found is not None:
        problems.append(visit.gettext("The pattern is not a valid STIX pattern: %(reason)s", reason=found))
    if TlpLevel.from_token(draft.tlp) is None:
        problems.append(visit.gettext("Unknown TLP level."))
    unknown = [code for code in _codes(draft.rel_to) if code not in ISO3166_ALPHA3]
    if unknown:
        problems.append(visit.gettext("Not a country code (ISO 3166 alpha-3, such as GBR or JPN): %(codes)s",
                                      codes=", ".join(unknown)))
    if not any(draft.collection in (c.id, c.alias) for c in writable):
        problems.append(visit.gettext("Choose a collection this token may write to."))
    return problems


def _codes(text: str) -> list[str]:
    return sorted({part.strip().upper() for part in text.replace(",", " ").split() if part.strip()})


def _objects(visit: Visit, draft: Draft) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The indicator and the marking definitions it brings (a REL TO marking, when asked for)."""
    level = TlpLevel.from_token(draft.tlp)
    assert level is not None
    definitions = [build_rel_to_marking(_codes(draft.rel_to))] if _codes(draft.rel_to) else []
    stamp = format_timestamp(now_micros())
    indicator: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": stamp,
        "modified": stamp, "name": draft.name.strip(), "pattern": draft.pattern.strip(), "pattern_type": "stix",
        "valid_from": stamp, "object_marking_refs": [TLP2_IDS[level], *(d["id"] for d in definitions)],
    }
    if draft.description.strip():
        indicator["description"] = draft.description.strip()
    if visit.principal.organisation_id:
        indicator["created_by_ref"] = visit.principal.organisation_id
    return indicator, definitions


def describe(visit: Visit, verdict: Verdict) -> str:
    """A verdict as a sentence in the reader's language."""
    if verdict.sees:
        if verdict.redacted:
            return visit.gettext("%(name)s will see this, with parts withheld", name=verdict.name)
        return visit.gettext("%(name)s will see this", name=verdict.name)
    template = REASONS.get(verdict.reason or "")
    because = (visit.gettext(template, **dict(verdict.params)) if template
               else visit.gettext("the node's policy does not release it to them"))
    return visit.gettext("%(name)s will not see this, because %(because)s", name=verdict.name, because=because)


def share_page(visit: Visit) -> Response:
    draft = Draft(collection=visit.request.query_params.get("collection", ""))
    return _form(visit, draft, _writable(visit))


def share_submit(visit: Visit) -> Response:
    form = visit.form
    draft = Draft(form.get("name", ""), form.get("pattern", ""), form.get("description", ""),
                  form.get("tlp", "amber"), form.get("rel_to", ""), form.get("collection", ""))
    writable = _writable(visit)
    problems = _problems(visit, draft, writable)
    if problems:
        return _form(visit, draft, writable, problems=problems, status=400)
    collection = next(c for c in writable if draft.collection in (c.id, c.alias))
    indicator, definitions = _objects(visit, draft)
    if form.get("action") == "preview":
        try:
            verdicts = visit.node.share_preview(visit.principal, indicator, [collection.id], definitions,
                                                api_root=collection.api_root)
        except Forbidden:
            return _form(visit, draft, writable, preview_refused=True)
        return _form(visit, draft, writable, preview=[(v.sees, describe(visit, v)) for v in verdicts])
    report = visit.node.add_objects(visit.principal, collection, [*definitions, indicator])
    if report.failures:
        refused = [f"{f.get('id', '')}: {f.get('message', '')}" for f in report.failures]
        return _form(visit, draft, writable, problems=refused, status=400)
    return visit.redirect(f"/console/objects/{indicator['id']}?collection={collection.alias or collection.id}")


def _form(visit: Visit, draft: Draft, writable: list[Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("problems", [])
    values.setdefault("preview", None)
    values.setdefault("preview_refused", False)
    return visit.render("share.html", status, draft=draft, collections=writable, levels=LEVELS, **values)


def pattern_check(visit: Visit) -> Response:
    """The as-you-type check: the ingest's own verdict on a pattern, as JSON."""
    text = visit.request.query_params.get("pattern", "")
    problem = stix_pattern_problem(text) if text.strip() else None
    message = (visit.gettext("The pattern is not a valid STIX pattern: %(reason)s", reason=problem) if problem
               else visit.gettext("The pattern is valid.") if text.strip() else "")
    return JSONResponse({"valid": problem is None and bool(text.strip()), "message": message})
