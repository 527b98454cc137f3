"""Signing in with a TAXII token, signing out, and switching the console's language."""

from __future__ import annotations

from starlette.responses import Response

from kizuna.core.sessions import SESSION_LIFETIME_US, set_language, sign_in, sign_out
from kizuna.stix.timestamps import now_micros
from kizuna.taxii.http import client_certificate
from kizuna.web.i18n import supported
from kizuna.web.page import Visit, safe_next
from kizuna.web.security import LANGUAGE_COOKIE, SESSION_COOKIE


def sign_in_page(visit: Visit) -> Response:
    if visit.session is not None:
        return visit.redirect(safe_next(visit.request.query_params.get("next")))
    return visit.render("sign_in.html", next=safe_next(visit.request.query_params.get("next")), failed=False)


def sign_in_submit(visit: Visit) -> Response:
    token = visit.form.get("token", "").strip()
    target = safe_next(visit.form.get("next"))
    made = sign_in(visit.node.store, token, visit.language, client_certificate(visit.request)) if token else None
    if made is None:
        if token:
            client = visit.request.client.host if visit.request.client else None
            visit.node.record_auth_failure(token, visit.request.url.path, client)
        # The same answer for an unknown, revoked or expired token.
        return visit.render("sign_in.html", 401, next=target, failed=True)
    session_id, session = made
    lifetime = max(1, min(SESSION_LIFETIME_US, session.expires_at - now_micros()) // 1_000_000)
    visit.cookies.append((SESSION_COOKIE, session_id, lifetime))
    return visit.redirect(target)


def sign_out_submit(visit: Visit) -> Response:
    if visit.session is not None:
        sign_out(visit.node.store, visit.session)
    response = visit.redirect("/console/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def language_submit(visit: Visit) -> Response:
    """Remembered in the signed-in session and in a cookie, so the sign-in page keeps it too."""
    language = supported(visit.form.get("language")) or visit.language
    if visit.session is not None:
        set_language(visit.node.store, visit.session, language)
    visit.cookies.append((LANGUAGE_COOKIE, language, 365 * 24 * 3600))
    return visit.redirect(safe_next(visit.form.get("next")))
