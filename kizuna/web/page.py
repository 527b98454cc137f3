"""How every console page runs: who is signed in, in which language, CSRF on forms, and errors.

A page is a plain function ``handler(visit) -> Response`` wrapped by :func:`page`; it runs in the
server's thread pool (pages read the store). The wrapper resolves the session cookie to a
:class:`~kizuna.core.sessions.Session` (its token's principal), picks the language, reads and checks
a POST form's CSRF value before the handler sees it, and renders every refusal as a console page: an
object the reader may not see is the same 404 page as one that does not exist.
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kizuna.core.errors import BadRequest, KizunaError, NotFound, PayloadTooLarge
from kizuna.core.node import Node
from kizuna.core.operators import is_operator
from kizuna.core.principal import Principal
from kizuna.core.sessions import Session, session_of
from kizuna.taxii.http import client_certificate, read_body
from kizuna.web.i18n import negotiate, supported, translations
from kizuna.web.render import render_page
from kizuna.web.security import LANGUAGE_COOKIE, PRE_SESSION_COOKIE, SESSION_COOKIE, protect, set_cookie

log = logging.getLogger("kizuna")
FORM_LIMIT = 64 * 1024  # console forms are small; a bigger body is refused before it is read
SIGN_IN_PATH = "/console/sign-in"


class CsrfRefused(KizunaError):
    status = 403
    title = "Forbidden"


@dataclass
class Visit:
    """One request to a console page, as the handler sees it."""

    request: Request
    node: Node
    session: Session | None
    language: str
    csrf: str  # the value this visit's forms carry back
    form: dict[str, str] = field(default_factory=dict)
    #: Every (name, value) of the form in order, for fields that repeat (checkboxes): see ``form_all``.
    form_pairs: list[tuple[str, str]] = field(default_factory=list)
    #: Files of a multipart form (pages wrapped with ``upload_limit``): field name -> (file name, bytes).
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    #: Cookies to set on whatever response the page returns: (name, value, max_age).
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        assert self.session is not None, "a page that reads needs page(signed_in=True)"
        return self.session.principal

    @cached_property
    def operator(self) -> bool:
        """Whether the signed-in token may use the operator pages (core/operators.py)."""
        return self.session is not None and is_operator(self.node, self.session.principal)

    def form_all(self, name: str) -> list[str]:
        """Every value the form sent for ``name`` (``form`` keeps only the last)."""
        return [value for key, value in self.form_pairs if key == name]

    def gettext(self, message: str, **values: Any) -> str:
        text = translations(self.language).gettext(message)
        return text % values if values else text

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.update(visit=self, csrf=self.csrf, signed_in=self.session is not None, operator=self.operator,
                      path=self.request.url.path, query=self.request.url.query)
        return HTMLResponse(render_page(self.language, template, values), status_code=status)

    def redirect(self, location: str) -> RedirectResponse:
        return RedirectResponse(location, status_code=303)


Handler = Callable[[Visit], Response]


def operators_only(handler: Handler) -> Handler:
    """A page for the node's operators only: anyone else gets the one 404 page, as for a page that
    does not exist, so a non-operator learns nothing about the node's configuration."""

    def run(visit: Visit) -> Response:
        if not visit.operator:
            raise NotFound("no such page")
        return handler(visit)

    return run


def safe_next(target: str | None) -> str:
    """Where to go after signing in or switching language: only a console path on this node."""
    if not target or not target.startswith("/console/") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


def page(handler: Handler, signed_in: bool = True, upload_limit: int = 0) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler (see the module docstring); ``signed_in=False`` for the sign-in page.
    ``upload_limit`` > 0 also accepts a multipart form of at most that many bytes (a file upload)."""

    async def run(request: Request) -> Response:
        node: Node = request.app.state.node
        cookie = request.cookies.get(SESSION_COOKIE)
        session = (await run_in_threadpool(session_of, node.store, cookie, client_certificate(request))
                   if cookie else None)
        language = (
            (session.language if session else None) or supported(request.cookies.get(LANGUAGE_COOKIE))
            or negotiate(request.headers.get("accept-language"))
        )
        pre = request.cookies.get(PRE_SESSION_COOKIE)
        new_pre = None
        if session is None and not pre:
            pre = new_pre = secrets.token_urlsafe(32)
        visit = Visit(request, node, session, language, session.csrf_secret if session else pre or "")
        try:
            if request.method == "POST":
                if upload_limit and _content_type(request) == "multipart/form-data":
                    visit.form, visit.files = await _read_upload(visit, upload_limit)
                else:
                    visit.form_pairs = await _read_form(visit)
                    visit.form = dict(visit.form_pairs)
                presented = visit.form.get("csrf")
                valid = session.csrf_matches(presented) if session else (
                    new_pre is None and presented is not None and secrets.compare_digest(presented, pre or "")
                )
                if not valid:
                    raise CsrfRefused("the form's security token is missing or out of date")
            if signed_in and session is None:
                if request.method not in ("GET", "HEAD"):  # HEAD is GET without the body (RFC 9110 §9.3.2)
                    raise CsrfRefused("sign in first")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response: Response = visit.redirect(f"{SIGN_IN_PATH}?next={urllib.parse.quote(target)}")
            else:
                response = await run_in_threadpool(handler, visit)
        except KizunaError as exc:
            response = error_page(visit, exc)
        except Exception:  # noqa: BLE001 - any other failure is the console's 500 page, logged with its cause
            # Answered here rather than by the app's last-resort handler: that one answers TAXII JSON without
            # the console's headers and re-raises, so the server closes a kept-alive connection after it.
            log.exception("console page %s failed", request.url.path)
            response = visit.render("error.html", 500, code=500, reason="server-error")
        if cookie and session is None:
            response.delete_cookie(SESSION_COOKIE, path="/")  # expired or ended elsewhere
        if new_pre:
            set_cookie(response, request, PRE_SESSION_COOKIE, new_pre)
        for name, value, max_age in visit.cookies:
            set_cookie(response, request, name, value, max_age)
        response.headers["Cache-Control"] = "no-store"  # pages show what one principal may see
        return protect(response)

    return run


def error_page(visit: Visit, exc: KizunaError) -> Response:
    """The console's refusal pages. A 404 never says why: hidden and absent look the same."""
    if isinstance(exc, NotFound):
        return visit.render("error.html", 404, code=404, reason="not-found")
    if isinstance(exc, CsrfRefused):
        return visit.render("error.html", 403, code=403, reason="csrf")
    return visit.render("error.html", exc.status, code=exc.status, reason="bad-request", detail=exc.description)


async def not_found(request: Request) -> Response:
    """Every other path under /console/: the same 404 page."""
    return await page(_raise_not_found, signed_in=False)(request)


def _raise_not_found(visit: Visit) -> Response:
    raise NotFound("no such page")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_upload(visit: Visit, limit: int) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart form: read whole up to ``limit`` bytes (a bigger one is refused before parsing)."""
    request = visit.request
    try:
        body = await read_body(request, limit)
    except PayloadTooLarge:
        raise BadRequest(visit.gettext("The file is larger than %(mib)s MiB; import it with the command line "
                                       "(kizuna import).", mib=limit // (1024 * 1024))) from None
    delivered = False

    async def replay() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    try:
        async with Request(request.scope, replay).form(max_files=1, max_fields=16) as parsed:
            for name, value in parsed.multi_items():
                if isinstance(value, str):
                    fields[name] = value
                else:
                    files[name] = (value.filename or "upload", await value.read())
    except HTTPException:
        raise BadRequest(visit.gettext("The upload is not a well-formed form.")) from None
    return fields, files


async def _read_form(visit: Visit) -> list[tuple[str, str]]:
    request = visit.request
    if _content_type(request) != "application/x-www-form-urlencoded":
        return []  # not a console form: it carries no CSRF value either, so it is refused with 403
    try:
        body = await read_body(request, FORM_LIMIT)
    except PayloadTooLarge:
        raise BadRequest(visit.gettext("The form is too large: a console form is at most %(kib)s KiB.",
                                       kib=FORM_LIMIT // 1024)) from None
    try:
        return urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest(visit.gettext("The form is not UTF-8.")) from None
