"""API tokens: shown once, stored as a hash, checked in constant time.

A token reads ``kz_<id>_<secret>``.  The id finds the record without touching the
secret; the secret is 256 random bits, so a single SHA-256 is a sufficient hash (a slow
password hash protects guessable secrets, and these are not guessable).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from kizuna.core.principal import Principal
from kizuna.stix.timestamps import now_micros
from kizuna.store.base import Grant, Store, TokenRecord

_PREFIX = "kz_"
_DUMMY_HASH = hashlib.sha256(b"kizuna: no such token").hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    store: Store, organisation_id: str, grants: Iterable[Grant], label: str | None = None,
    agreement_id: str | None = None,
) -> tuple[str, str]:
    """Create a token; return (token id, the full secret token to show once)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    store.create_token(
        TokenRecord(
            id=token_id, organisation_id=organisation_id, secret_hash=hash_secret(secret),
            label=label, created_at=now_micros(), revoked_at=None, grants=tuple(grants),
        )
    )
    if agreement_id is not None:
        # The secret has not been shown yet, so nobody can use the token before it is bound.
        store.set_token_agreement(token_id, agreement_id)
    return token_id, f"{_PREFIX}{token_id}_{secret}"


def authenticate_token(store: Store, presented: str) -> Principal | None:
    token_id, secret = _split(presented)
    record = store.get_token(token_id) if token_id else None
    expected = record.secret_hash if record is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_secret(secret), expected)
    if record is None or not matches or record.revoked_at is not None:
        return None
    return Principal(
        key=record.id,
        organisation_id=record.organisation_id,
        grants={grant.collection_pk: grant for grant in record.grants},
        agreement_id=store.get_token_agreement(record.id),
    )


def _split(presented: str) -> tuple[str, str]:
    if not presented.startswith(_PREFIX):
        return "", presented
    token_id, _, secret = presented[len(_PREFIX):].partition("_")
    return token_id, secret
