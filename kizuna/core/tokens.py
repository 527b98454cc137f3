"""API tokens: shown once, stored as a hash, checked in constant time.

A token reads ``kz_<id>_<secret>``.  The id finds the record without touching the
secret; the secret is 256 random bits, so a single SHA-256 is a sufficient hash (a slow
password hash protects guessable secrets, and these are not guessable).

A token may carry an expiry; from that moment on it is refused exactly like an unknown token,
in every server process, because the expiry is checked against the stored record on each request.

A token may be bound to a client certificate (the SHA-256 of its DER encoding): it then works only on
a connection whose TLS layer verified that certificate, so a token copied out of a configuration file
is useless without the partner's private key. Rotation gives a token a new secret and keeps the
replaced one valid for a grace period, so a partner can switch without a gap; the token id, its grants
and its binding stay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from kizuna.core.errors import MAX_LABEL_CHARS, AdminError, NotFound, check_name
from kizuna.core.principal import Principal
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_moment
from kizuna.store.base import Grant, Store, TokenRecord

_PREFIX = "kz_"
_DUMMY_HASH = hashlib.sha256(b"kizuna: no such token").hexdigest()
_MAX_DURATION_DIGITS = 7
_DURATION = re.compile(rf"^([1-9][0-9]{{0,{_MAX_DURATION_DIGITS - 1}}})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: The node setting listing the ids of tokens that hold the operator right (core/operators.py).
OPERATORS_SETTING = "operator_token_ids"

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_expiry(text: str, now: int, option: str = "--expires") -> int:
    """When a token given ``--expires text`` at ``now`` stops working, in µs since the epoch.

    ``text`` is a duration from now (``90s``, ``90m``, ``12h``, ``30d``) or an ISO 8601 date or
    time (``2027-03-31`` is midnight UTC at its start; a time without an offset is UTC). The moment
    must lie in the future: a token that never works is a mistake worth reporting; and at most
    `MAX_EXPIRY_YEARS` years ahead. ``option`` names the value in errors.
    """
    value = text.strip()
    duration = _duration_micros(value, option)
    at = now + duration if duration is not None else _parse_moment(value, option)
    if at <= now:
        raise ExpiryNotInFuture(f"{option} {text!r} is not in the future")
    if at > latest_expiry(now):
        raise ExpiryTooFar(f"{option} {text!r} is more than {MAX_EXPIRY_YEARS} years from now; leave {option} out "
                           "for a token that lasts until it is revoked")
    return at


#: Furthest ahead a token's expiry may lie. Longer than the partner agreements and operations tokens are made
#: for (a year or two); an expiry further off is a typo (``9999999d``, year 29406) or no expiry in practice,
#: which a token without one already says, and it keeps every expiry a four-digit-year STIX timestamp.
MAX_EXPIRY_YEARS = 5


def latest_expiry(now: int) -> int:
    """The furthest expiry allowed at ``now`` (µs): the same moment `MAX_EXPIRY_YEARS` calendar years on
    (29 February goes to 28 February)."""
    moment = _EPOCH + dt.timedelta(microseconds=now)
    year = moment.year + MAX_EXPIRY_YEARS
    try:
        later = moment.replace(year=year)
    except ValueError:  # 29 February, in a year without one
        later = moment.replace(year=year, day=28)
    return (later - _EPOCH) // dt.timedelta(microseconds=1)


class ExpiryNotInFuture(AdminError):
    """An expiry that is a valid moment, only not a later one (told apart from a value that is not one)."""


class ExpiryTooFar(AdminError):
    """An expiry that is a valid moment, only further ahead than `MAX_EXPIRY_YEARS` allows."""


#: Longest grace a rotated token's old secret is given: a rotation is meant to end the old secret.
MAX_GRACE_DAYS = 90


def parse_grace(text: str, now: int) -> int:
    """When the replaced secret of a rotated token stops working: ``0`` is now, else a duration (``90s``,
    ``30m``, ``12h``, ``7d``) of at most `MAX_GRACE_DAYS` days."""
    value = text.strip()
    if value in ("0", "0s", "0m", "0h", "0d"):
        return now
    duration = _duration_micros(value, "--grace")
    if duration is None:
        raise AdminError(f"--grace {text!r} is not a duration (0, 90s, 30m, 12h, 7d)")
    if duration > MAX_GRACE_DAYS * 86400 * 1_000_000:
        raise AdminError(f"--grace {text!r} is longer than {MAX_GRACE_DAYS} days")
    return now + duration


def _duration_micros(value: str, option: str) -> int | None:
    """µs of a duration like ``12h``; None when ``value`` is not written as one."""
    duration = _DURATION.match(value)
    if duration is None:
        if re.fullmatch(r"[1-9][0-9]*[smhd]", value):  # a duration, only too long to be meant
            raise AdminError(f"{option} {value!r} is out of range: at most {_MAX_DURATION_DIGITS} digits "
                             "before the unit")
        return None
    return int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)] * 1_000_000


def _parse_moment(value: str, option: str) -> int:
    try:
        return parse_moment(value)
    except ValueError:
        raise AdminError(
            f"{option} {value!r} is neither a duration (90m, 12h, 30d) nor an ISO date (2027-03-31)"
        ) from None


def token_state(record: TokenRecord, now: int) -> str:
    """``revoked``, ``expired`` or ``active``: whether the token works at ``now``, and if not, why."""
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return "active"


def refuse_unless_active(record: TokenRecord, why: str) -> None:
    """Refuse to give a right to, or change, a token that cannot sign in (revoked or expired): a grant would sit
    in the listings as if it meant something, and a change would not make it work again. ``why`` ends the
    refusal ("it cannot sign in to read /metrics")."""
    state = token_state(record, now_micros())
    if state != "active":
        raise AdminError(f"token {record.id} is {state}: {why}")


def issue_token(
    store: Store, organisation_id: str, grants: Iterable[Grant], label: str | None = None,
    agreement_id: str | None = None, expires_at: int | None = None,
) -> tuple[str, str]:
    """Create a token; return (token id, the full secret token to show once)."""
    if label is not None:  # every way a token is made (CLI, console, metrics, operations) meets this one rule
        check_name(label, "the label", MAX_LABEL_CHARS)
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    store.create_token(
        TokenRecord(
            id=token_id, organisation_id=organisation_id, secret_hash=hash_secret(secret),
            label=label, created_at=now_micros(), revoked_at=None, grants=tuple(grants),
            expires_at=expires_at,
        )
    )
    if agreement_id is not None:
        # The secret has not been shown yet, so nobody can use the token before it is bound.
        store.set_token_agreement(token_id, agreement_id)
    return token_id, f"{_PREFIX}{token_id}_{secret}"


def authenticate_token(store: Store, presented: str, client_cert: str | None = None) -> Principal | None:
    """The principal of a presented token, or None: unknown, wrong secret, revoked, expired, or bound
    to a certificate other than ``client_cert`` (the fingerprint of the connection's verified client
    certificate; None when it presented none)."""
    token_id, secret = _split(presented)
    record = store.get_token(token_id) if token_id else None
    now = now_micros()
    presented_hash = hash_secret(secret)
    expected = record.secret_hash if record is not None else _DUMMY_HASH
    matches = hmac.compare_digest(presented_hash, expected)
    if record is not None and record.trust.previous_secret_hash is not None:
        # Both comparisons always run, so timing does not tell which secret was tried.
        previous = hmac.compare_digest(presented_hash, record.trust.previous_secret_hash)
        matches = matches or (previous and (record.trust.previous_valid_until or 0) > now)
    if record is None or not matches or token_state(record, now) != "active":
        return None
    bound = record.trust.cert_sha256
    if bound is not None and (client_cert is None or not hmac.compare_digest(bound, client_cert)):
        return None
    return principal_of(store, record)


def certificate_fingerprint(pem_or_der: str | bytes) -> str:
    """SHA-256 of a certificate's DER encoding, lower-case hex (what ``openssl x509 -fingerprint -sha256``
    prints, without colons)."""
    import ssl  # on first use: a certificate-bound token is rare, and ssl is 8 ms of every command's start

    der = pem_or_der if isinstance(pem_or_der, bytes) else ssl.PEM_cert_to_DER_cert(pem_or_der)
    return hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as operators paste it (hex, with or without colons, any case), normalised."""
    value = text.strip().replace(":", "").lower()
    if value.startswith("sha256="):
        value = value[len("sha256="):]
    if not _FINGERPRINT.match(value):
        raise AdminError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return value


def certificate_expired_on(pem: bytes) -> str | None:
    """The day the first certificate of PEM bytes stopped being valid (ISO date), or None while it is valid
    (or when it cannot be read: the callers' own checks say why). A TLS handshake refuses an expired
    certificate with a bare "certificate has expired" or a closed connection, at the first use."""
    from cryptography import x509  # on first use, as ssl above

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    end = certificate.not_valid_after_utc
    return end.date().isoformat() if end.timestamp() * 1_000_000 < now_micros() else None


def read_certificate_fingerprint(path: str) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    begin, finish = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    try:
        with open(path, encoding="ascii") as handle:
            pem = handle.read()
    except UnicodeDecodeError:
        raise AdminError(f"{path} is not a PEM certificate: it holds bytes that are not ASCII") from None
    except OSError as exc:
        raise AdminError(f"cannot read a PEM certificate from {path}: {exc.strerror or exc}") from None
    start = pem.find(begin)
    end = pem.find(finish, start) if start >= 0 else -1
    if end < 0:
        raise AdminError(f"{path} is not a PEM certificate: it has no {begin} … {finish} block")
    block = pem[start:end + len(finish)] + "\n"
    if (expired := certificate_expired_on(block.encode("ascii"))) is not None:
        raise AdminError(f"the certificate in {path} expired on {expired}: a handshake with it is refused")
    try:
        return certificate_fingerprint(block)
    except ValueError as exc:
        raise AdminError(f"cannot read a PEM certificate from {path}: {exc}") from None


def active_token(store: Store, token_id: str) -> TokenRecord:
    """The record of a token that still works, to be changed: a revoked or expired one is refused (changing
    it would not make it work again), an unknown one is not found."""
    record = store.get_token(token_id)
    if record is None:
        raise NotFound(f"no token {token_id!r}")
    refuse_unless_active(record, "create a new one instead")
    return record


def rotate_token(store: Store, token_id: str, previous_valid_until: int) -> str:
    """Give a token a new secret (returned, to show once); the replaced one works until the moment given."""
    active_token(store, token_id)
    secret = secrets.token_urlsafe(32)
    if not store.rotate_token_secret(token_id, hash_secret(secret), previous_valid_until):
        raise AdminError(f"token {token_id} was revoked meanwhile")
    return f"{_PREFIX}{token_id}_{secret}"


def principal_of(store: Store, record: TokenRecord, key: str | None = None) -> Principal:
    """The principal a token record stands for; ``key`` overrides its id (an operator acting as it)."""
    return Principal(
        key=key or record.id,
        organisation_id=record.organisation_id,
        grants={grant.collection_pk: grant for grant in record.grants},
        agreement_id=record.agreement_id,
    )


def _split(presented: str) -> tuple[str, str]:
    if not presented.startswith(_PREFIX):
        return "", presented
    token_id, _, secret = presented[len(_PREFIX):].partition("_")
    return token_id, secret


def operator_tokens(store: Store) -> set[str]:
    """Ids of the tokens holding the operator right (the console's operator pages)."""
    stored = store.get_setting(OPERATORS_SETTING)
    return set(orjson.loads(stored)) if stored else set()


def describe_tokens(store: Store, now: int) -> list[dict[str, Any]]:
    """Every token as an operator reads it: organisation by name, rights by collection alias or title,
    expiry and state. Never a secret or its hash."""
    operators = operator_tokens(store)
    organisations = {org.id: org.name for org in store.list_organisations()}
    collections = {c.pk: c for c in store.list_collections()}

    def names(record: TokenRecord, right: str) -> list[str]:
        found = [collections.get(g.collection_pk) for g in record.grants if getattr(g, right)]
        return [c.alias or c.title for c in found if c is not None]

    described: list[dict[str, Any]] = []
    for record in store.list_tokens():
        described.append({
            "id": record.id,
            "organisation": organisations.get(record.organisation_id, record.organisation_id),
            "organisation_id": record.organisation_id,
            "read": names(record, "can_read"),
            "write": names(record, "can_write"),
            "label": record.label,
            "agreement": record.agreement_id,
            "created": format_timestamp(record.created_at),
            "expires": format_timestamp(record.expires_at) if record.expires_at is not None else None,
            "revoked": format_timestamp(record.revoked_at) if record.revoked_at is not None else None,
            "state": token_state(record, now),
            "operator": record.id in operators,
            "certificate": record.trust.cert_sha256,
            "previous_secret_until": format_timestamp(record.trust.previous_valid_until)
            if record.trust.previous_valid_until is not None and record.trust.previous_valid_until > now else None,
        })
    return described
