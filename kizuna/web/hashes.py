"""Hashes (issue 13): match images, videos or pasted hashes against the hash banks the signed-in token
reads, and record a verdict on a matched signal.

Matching and verdicts live in ``kizuna/hashes/`` (a room above this one): ``kizuna/app.py`` hands the
two functions over as ``app.state.hashes``, bound to the same shared bank indexes as
``POST /{api_root}/hashes/match``. Both act as the signed-in token, so a signal it may not see is never
matched, and a verdict on it is the same 404 page as one on a signal that does not exist. The verdict is
a STIX opinion written with the token's own write right (it may have none: the form then says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import Response

from kizuna.core.errors import BadRequest, Forbidden, NotFound
from kizuna.core.listing import readable_collections
from kizuna.core.principal import Principal
from kizuna.core.vocab import N_
from kizuna.numerals import typed_whole_number
from kizuna.store.base import Collection
from kizuna.web.i18n import number
from kizuna.web.page import Visit

#: An upload's largest size (bigger media: `kizuna hashes match`, which reads files where they are).
UPLOAD_LIMIT: Final = 64 * 1024 * 1024
#: Pasted lines at most (a longer list: the CLI or the API).
MAX_LINES: Final = 1000
#: How each verdict reads on the page (translated); the keys are `kizuna hashes opinion --verdict`'s.
VERDICT_NAMES: Final = {"true-positive": N_("true positive"), "false-positive": N_("false positive"),
                        "disputed": N_("disputed")}


@dataclass(frozen=True)
class HashesSource:
    """What kizuna/hashes gives the console."""

    #: (principal, banks, pasted text, upload as (name, bytes) or None, threshold, across types) -> results
    match: Callable[[Principal, list[Collection], str, tuple[str, bytes] | None, int, bool], list[dict[str, Any]]]
    #: (principal, bank, signal id, verdict, comment) -> the stored opinion
    opinion: Callable[[Principal, Collection, str, str, str | None], dict[str, Any]]
    #: The PDQ distance that still matches when the form leaves it empty (the API's and the CLI's default).
    default_threshold: int


def _source(visit: Visit) -> HashesSource:
    source: HashesSource = visit.request.app.state.hashes
    return source


def _form(visit: Visit, banks: list[Collection], status: int = 200, **values: Any) -> Response:
    """The page, with ``banks`` (the collections the token reads, read once per request by the caller)."""
    values.setdefault("draft", {"threshold": str(_source(visit).default_threshold)})
    values.setdefault("problem", None)
    values.setdefault("results", None)
    names = {key: c.title for c in banks for key in (c.id, c.alias) if key}
    writable = {key for c in banks if visit.principal.can_write(c) for key in (c.id, c.alias) if key}
    verdicts = {key: visit.gettext(label) for key, label in VERDICT_NAMES.items()}
    producers = {o.id: o.name for o in visit.node.store.list_organisations()}
    return visit.render("hashes.html", status, banks=banks, bank_names=names, writable=writable,
                        verdicts=verdicts, producers=producers, max_lines=MAX_LINES, **values)


def hashes_page(visit: Visit) -> Response:
    return _form(visit, readable_collections(visit.node, visit.principal))


def hashes_submit(visit: Visit) -> Response:
    text = visit.form.get("hashes", "")
    banks = readable_collections(visit.node, visit.principal)
    threshold_text = visit.form.get("threshold", "").strip() or str(_source(visit).default_threshold)
    across = visit.form.get("across") == "on"
    upload = visit.files.get("media")
    upload = upload if upload is not None and upload[1] else None
    draft = {"hashes": text, "threshold": threshold_text, "across": across}
    problem = None
    threshold = typed_whole_number(threshold_text, 255)
    if threshold is None:
        problem = visit.gettext("The distance must be a whole number from 0 to 255.")
    elif not text.strip() and upload is None:
        problem = visit.gettext("Paste hashes or choose a file to match.")
    elif len(text.splitlines()) > MAX_LINES:
        problem = visit.gettext("At most %(count)s lines; match longer lists with the command line or the API.",
                                count=number(MAX_LINES, visit.language))
    if problem is not None or threshold is None:
        return _form(visit, banks, 422, draft=draft, problem=problem)
    results = _source(visit).match(visit.principal, banks, text, upload, threshold, across)
    return _form(visit, banks, draft=draft, results=results, matched=sum(1 for r in results if r.get("matches")))


def opinion_submit(visit: Visit) -> Response:
    bank, signal = visit.form.get("bank", ""), visit.form.get("signal", "")
    verdict, comment = visit.form.get("verdict", ""), visit.form.get("comment", "").strip() or None
    banks = readable_collections(visit.node, visit.principal)
    chosen = next((c for c in banks if bank in (c.id, c.alias)), None)
    if chosen is None:
        raise NotFound("no such hash signal in this bank")  # the answer for a signal the token may not see
    try:
        opinion = _source(visit).opinion(visit.principal, chosen, signal, verdict, comment)
    except (BadRequest, Forbidden) as exc:
        return _form(visit, banks, 400 if isinstance(exc, BadRequest) else 403, problem=exc.description)
    return visit.redirect(f"/console/objects/{opinion['id']}?collection={bank}")
