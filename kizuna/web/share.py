"""Share: write a new indicator, a report referencing objects, or a note or opinion on objects from the
console, with its TLP and releasability, after a plain-language preview of which partners will receive it.

The draft is judged and stored by the same code as everything else: the pattern by the ingest's own
validator (`stix.patterns.stix_pattern_problem`, also behind the as-you-type check), the preview by
`Node.share_preview` (the policy engine, per partner, with a reason code the page translates), and the
write by `Node.add_objects` with the signed-in token's write right, so it is validated, marked,
audited and federated like a TAXII POST. The object is produced by the token's organisation; the kinds
and their checks are in web/drafts.py.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.responses import JSONResponse, Response

from kizuna.core.errors import Forbidden, NotFound
from kizuna.core.listing import display_name, readable_collections
from kizuna.core.object_view import locate
from kizuna.policy.preview import REASONS, Verdict
from kizuna.policy.tlp import TlpLevel
from kizuna.stix.patterns import stix_pattern_problem
from kizuna.web.drafts import HEADINGS, KINDS, MAX_REFS, OPINIONS, Draft, build, problems
from kizuna.web.page import Visit

LEVELS: Final = [(level.token, level.label) for level in TlpLevel]


def _writable(visit: Visit) -> list[Any]:
    return [c for c in readable_collections(visit.node, visit.principal) if visit.principal.can_write(c)]


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
    """The form, empty or prefilled from the query (the object page links here with kind, refs and
    collection for a note, an opinion or a report about the object)."""
    return _form(visit, Draft.from_values(visit.request.query_params), _writable(visit))


def share_submit(visit: Visit) -> Response:
    draft = Draft.from_values(visit.form)
    writable = _writable(visit)
    found = problems(visit, draft, writable)
    if found:
        return _form(visit, draft, writable, problems=found, status=400)
    collection = next(c for c in writable if draft.collection in (c.id, c.alias))
    obj, definitions = build(visit, draft)
    if visit.form.get("action") == "preview":
        try:
            verdicts = visit.node.share_preview(visit.principal, obj, [collection.id], definitions,
                                                api_root=collection.api_root)
        except Forbidden:
            return _form(visit, draft, writable, preview_refused=True)
        return _form(visit, draft, writable, preview=[(v.sees, describe(visit, v)) for v in verdicts])
    report = visit.node.add_objects(visit.principal, collection, [*definitions, obj])
    if report.failures:
        refused = [f"{f.get('id', '')}: {f.get('message', '')}" for f in report.failures]
        return _form(visit, draft, writable, problems=refused, status=400)
    return visit.redirect(f"/console/objects/{obj['id']}?collection={collection.alias or collection.id}")


def _form(visit: Visit, draft: Draft, writable: list[Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("problems", [])
    values.setdefault("preview", None)
    values.setdefault("preview_refused", False)
    about = names_of_refs(visit, draft.ref_ids()[:MAX_REFS]) if draft.kind != "indicator" else []
    return visit.render("share.html", status, draft=draft, collections=writable, levels=LEVELS,
                        kinds=[(kind, visit.gettext(HEADINGS[kind])) for kind in KINDS],
                        heading=visit.gettext(HEADINGS[draft.kind]),
                        opinions=[(value, visit.gettext(label)) for value, label in OPINIONS], about=about, **values)


def names_of_refs(visit: Visit, refs: list[str]) -> list[tuple[str, str]]:
    """(id, name) of the referred objects the reader sees, to show what the draft is about."""
    named = []
    for ref in refs:
        try:
            _, items = locate(visit.node, visit.principal, ref)
        except NotFound:
            continue
        latest = max(items, key=lambda pair: pair[0].version)
        named.append((ref, display_name(orjson.loads(latest[1])) or ref))
    return named


def pattern_check(visit: Visit) -> Response:
    """The as-you-type check: the ingest's own verdict on a pattern, as JSON."""
    text = visit.request.query_params.get("pattern", "")
    problem = stix_pattern_problem(text) if text.strip() else None
    message = (visit.gettext("The pattern is not a valid STIX pattern: %(reason)s", reason=problem) if problem
               else visit.gettext("The pattern is valid.") if text.strip() else "")
    return JSONResponse({"valid": problem is None and bool(text.strip()), "message": message})
