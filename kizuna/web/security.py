"""What every console response carries for the browser's protection, and the cookies it sets.

The Content-Security-Policy allows scripts and styles only from the console's own static files: no
inline script, no style attribute, no CDN. Cookies are HttpOnly and SameSite=Strict, and Secure when
the request came over https (directly, or through a proxy that says so in X-Forwarded-Proto).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
SESSION_COOKIE = "kizuna_session"
#: Before sign-in, forms are protected by a random value in this cookie echoed in the form (double submit).
PRE_SESSION_COOKIE = "kizuna_presession"
LANGUAGE_COOKIE = "kizuna_lang"


def protect(response: Response) -> Response:
    """Add the headers above to a console response (pages, static files, redirects)."""
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    return response


class ConsoleStatic(StaticFiles):
    """The console's static files, with the same headers as its pages."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        return protect(await super().get_response(path, scope))


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=is_https(request),
    )
