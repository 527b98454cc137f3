"""Console sessions: a browser signs in once with a TAXII token and then reads as that token.

The session id is 256 random bits given to the browser once (as a cookie) and stored only as its
SHA-256, like token secrets. A session never outlives its token: the token's record is read on every
request, so revoking the token or reaching its expiry ends every session made with it, in every
server process. Each session carries its own CSRF secret, which console forms echo back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from kizuna.core.principal import Principal
from kizuna.core.tokens import authenticate_token, principal_of, token_state
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import Store
from kizuna.store.sessions import SessionRecord

#: How long a console session lasts without signing in again (also capped by the token's expiry).
SESSION_LIFETIME_US = 12 * 3600 * 1_000_000


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: whose eyes it reads with, its CSRF secret and its language."""

    id_hash: str
    principal: Principal
    csrf_secret: str
    language: str
    expires_at: int

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf_secret.encode())


def sign_in(store: Store, token: str, language: str, client_cert: str | None = None) -> tuple[str, Session] | None:
    """A new session for ``token`` (None when the token is unknown, revoked or expired, or bound to a
    certificate other than ``client_cert``, the connection's verified client certificate): the session
    id to give the browser once, and the session."""
    principal = authenticate_token(store, token, client_cert)
    if principal is None:
        return None
    record = store.get_token(principal.key)
    now = now_micros()
    expires = now + SESSION_LIFETIME_US
    if record is not None and record.expires_at is not None:
        expires = min(expires, record.expires_at)
    session_id = secrets.token_urlsafe(32)
    stored = SessionRecord(_hash(session_id), principal.key, now, expires, secrets.token_urlsafe(32), language)
    store.create_session(stored)
    store.purge_sessions(now)
    return session_id, Session(stored.id_hash, principal, stored.csrf_secret, language, expires)


def session_of(store: Store, session_id: str, client_cert: str | None = None) -> Session | None:
    """The live session a browser presents, or None: unknown, expired, or its token no longer works
    (then the session is deleted, so it cannot come back if the clock or the token changes).

    A session of a token bound to a certificate is only honoured on a connection that presented that
    certificate (``client_cert``), so a copied cookie is as useless without it as the token itself.
    Such a refusal keeps the session: the browser that holds the certificate stays signed in."""
    id_hash = _hash(session_id)
    stored = store.get_session(id_hash)
    if stored is None:
        return None
    now = now_micros()
    record = store.get_token(stored.token_id)
    if stored.expires_at <= now or record is None or token_state(record, now) != "active":
        store.delete_session(id_hash)
        return None
    bound = record.trust.cert_sha256
    if bound is not None and (client_cert is None or not hmac.compare_digest(bound, client_cert)):
        return None
    return Session(id_hash, principal_of(store, record), stored.csrf_secret, stored.language, stored.expires_at)


def set_language(store: Store, session: Session, language: str) -> None:
    store.set_session_language(session.id_hash, language)


def sign_out(store: Store, session: Session) -> None:
    store.delete_session(session.id_hash)
