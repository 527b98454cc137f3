"""Tokens (operators): list, create and revoke API tokens, as ``kizuna tokens list|create|revoke`` do.

The list never shows a secret or its hash (``core/tokens.describe_tokens``). A new token's secret is
on the page that answers the create form, once: it is not stored, the answer is ``no-store``, and
nothing links back to it. Creating and revoking go through ``Node.create_token`` / ``Node.revoke_token``,
audited as the CLI's are, under the operator's own token id rather than "admin". Revoking asks first:
the confirmation is a page of its own, and the revoke itself is a POST carrying the CSRF value.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from kizuna.core.errors import MAX_LABEL_CHARS, BadRequest, KizunaError, NotFound, name_problem
from kizuna.core.node import agreement_binding_problem
from kizuna.core.tokens import MAX_EXPIRY_YEARS, ExpiryNotInFuture, ExpiryTooFar, describe_tokens, parse_expiry
from kizuna.stix.timestamps import now_micros
from kizuna.web.page import Visit


def _choices(visit: Visit) -> dict[str, Any]:
    store = visit.node.store
    return {"organisations": sorted(store.list_organisations(), key=lambda o: o.name),
            "collections": sorted(store.list_collections(), key=lambda c: c.title),
            "agreements": sorted(a.agreement_id for a in visit.node.policy.context().agreements()),
            "max_label": MAX_LABEL_CHARS}


def tokens_page(visit: Visit) -> Response:
    rows = describe_tokens(visit.node.store, now_micros())
    revoked = visit.request.query_params.get("revoked")
    # The node's own organisation first: most tokens are for its own tools, and a partner's is a choice.
    draft = {"organisation": visit.node.store.get_setting("node_identity")}
    return visit.render("tokens.html", tokens=rows, draft=draft, problem=None,
                        revoked=revoked if any(r["id"] == revoked for r in rows) else None, **_choices(visit))


def _form_problem(visit: Visit, organisation: str, read: list[str], write: list[str], agreement: str | None,
                  expires: str, label: str) -> str | None:
    """What is wrong with the form, said as the page says things (translated, naming its fields rather
    than the CLI's options), found with the node's own look-ups; None to let the node decide the rest."""
    org = visit.node.store.get_organisation(organisation)
    if org is None:
        return visit.gettext("Organisation: there is no such organisation on this node.")
    if not read and not write:
        return visit.gettext("Tick at least one collection the token may read or write.")
    for ref in dict.fromkeys([*read, *write]):
        try:
            visit.node.find_collection(ref)
        except KizunaError:
            return visit.gettext("Collections: %(name)s is not one collection of this node.", name=ref)
    if agreement is not None:
        found = visit.node.policy.agreement(agreement)
        if found is None:
            return visit.gettext("Agreement: there is no agreement %(name)s.", name=agreement)
        if agreement_binding_problem(found, org.id) is not None:
            return visit.gettext("Agreement: %(name)s is made with another partner; a token reads only under an "
                                 "agreement with its own organisation.", name=agreement)
    if name_problem(label, "the label", MAX_LABEL_CHARS) is not None:  # the node's own rule (maxlength is a hint)
        return visit.gettext("Label: at most %(most)s characters, on one line.", most=MAX_LABEL_CHARS)
    if expires:
        try:
            parse_expiry(expires, now_micros())
        except ExpiryNotInFuture:
            return visit.gettext("Expires: %(value)s is not in the future.", value=expires)
        except ExpiryTooFar:
            return visit.gettext("Expires: %(value)s is more than %(years)s years from now; leave it empty for a "
                                 "token that lasts until revoked.", value=expires, years=MAX_EXPIRY_YEARS)
        except KizunaError:
            return visit.gettext("Expires: %(value)s is neither a duration (90m, 12h, 30d) nor a date "
                                 "(2027-03-31).", value=expires)
    return None


def token_create(visit: Visit) -> Response:
    form = visit.form
    read, write = [r for r in visit.form_all("read") if r], [w for w in visit.form_all("write") if w]
    try:
        organisation, agreement = form.get("organisation", ""), form.get("agreement") or None
        label = form.get("label", "").strip()
        problem = _form_problem(visit, organisation, read, write, agreement, form.get("expires", "").strip(), label)
        if problem is not None:
            raise BadRequest(problem)
        token_id, secret = visit.node.create_token(
            organisation, read, write, label or None,
            agreement, form.get("expires", "").strip() or None, actor=visit.principal.key,
        )
    except KizunaError as exc:
        rows = describe_tokens(visit.node.store, now_micros())
        return visit.render("tokens.html", status=400, tokens=rows, problem=exc.description, revoked=None,
                            draft={"organisation": form.get("organisation"), "read": read, "write": write,
                                   "label": form.get("label", ""), "expires": form.get("expires", "")},
                            **_choices(visit))
    created = next(r for r in describe_tokens(visit.node.store, now_micros()) if r["id"] == token_id)
    return visit.render("token_created.html", token=created, secret=secret)


def _token(visit: Visit) -> dict[str, object]:
    token_id = visit.request.path_params["token_id"]
    found = next((r for r in describe_tokens(visit.node.store, now_micros()) if r["id"] == token_id), None)
    if found is None:
        raise NotFound("no such token")
    return found


def revoke_confirm(visit: Visit) -> Response:
    token = _token(visit)
    return visit.render("token_revoke.html", token=token, own=token["id"] == visit.principal.key)


def revoke_submit(visit: Visit) -> Response:
    token = _token(visit)
    if token["revoked"] is not None:  # revoked meanwhile, in another tab or by the CLI: nothing to do
        return visit.render("token_revoke.html", status=400, token=token, own=False)
    visit.node.revoke_token(str(token["id"]), actor=visit.principal.key)
    if token["id"] == visit.principal.key:  # its own session ended with it
        return visit.redirect("/console/sign-in")
    return visit.redirect(f"/console/tokens?revoked={token['id']}")
