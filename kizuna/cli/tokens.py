"""``kizuna tokens``: API tokens, stored hashed, their secrets shown once."""

from __future__ import annotations

from typing import Any

import click

from kizuna.cli.common import CliError, aligned, emit, json_option, node_of, token_id_type
from kizuna.core.node import agreement_binding_problem
from kizuna.core.operators import set_operator_right
from kizuna.core.tokens import describe_tokens, read_certificate_fingerprint
from kizuna.stix.timestamps import format_timestamp, now_micros


@click.group()
def tokens() -> None:
    """API tokens (stored hashed; the secret is shown once)."""


@tokens.command("create")
@click.option("--org", "org", required=True, help="Organisation name or identity id.")
@click.option("--read", "read", multiple=True, help="Collection id or alias it may read (repeatable).")
@click.option("--write", "write", multiple=True, help="Collection id or alias it may write (repeatable).")
@click.option("--label", default=None, help="A note for operators, shown by `tokens list`.")
@click.option("--agreement", default=None, help="Bind the token to this partner agreement.")
@click.option("--expires", default=None, metavar="WHEN",
              help="Stop working after a duration (90m, 12h, 30d) or at an ISO date/time (2027-03-31), at most "
                   "5 years ahead. Default: until revoked.")
@click.option("--cert-fingerprint", default=None, metavar="SHA256",
              help="Accept the token only with this client certificate (SHA-256, hex, colons allowed); "
                   "needs `serve --client-ca`.")
@click.option("--cert", "cert_file", default=None, type=click.Path(dir_okay=False),
              help="Like --cert-fingerprint, reading the fingerprint from this PEM certificate.")
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, org: str, read: tuple[str, ...], write: tuple[str, ...],
                  label: str | None, agreement: str | None, expires: str | None, cert_fingerprint: str | None,
                  cert_file: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once and never stored. It needs --read or --write."""
    node = node_of(ctx)
    if agreement is not None and node.policy.agreement(agreement) is None:
        raise CliError(f"no agreement {agreement!r}; create it with `kizuna agreements set`", code="not-found")
    fingerprint = _fingerprint(cert_fingerprint, cert_file)
    token_id, secret = node.create_token(org, read, write, label, agreement, expires, cert_fingerprint=fingerprint)
    record = node.store.get_token(token_id)
    expires_at = format_timestamp(record.expires_at) if record and record.expires_at is not None else None
    payload = {"id": token_id, "token": secret, "expires": expires_at,
               **({"agreement": agreement} if agreement else {})}
    under = f" under agreement {agreement}" if agreement else ""
    until = f", valid until {expires_at}" if expires_at else ""
    emit(as_json, payload,
         f"Token {token_id} created{under}{until}. Store the secret now; it is not shown again:\n{secret}")


def _fingerprint(given: str | None, cert_file: str | None) -> str | None:
    if given is not None and cert_file is not None:
        raise CliError("give --cert-fingerprint or --cert, not both", code="usage")
    return read_certificate_fingerprint(cert_file) if cert_file is not None else given


def _table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns, one token a line; rights read ``r:alias`` / ``w:alias``."""
    if not rows:
        return "No tokens; create one with `kizuna tokens create`."
    header = ("ID", "ORGANISATION", "RIGHTS", "LABEL", "CREATED", "EXPIRES", "STATE")
    lines = [header]
    for r in rows:
        # What binds it, beside what it may do: a partner's agreement, a client certificate (its fingerprint's
        # start, as `tokens bind-cert` printed it).
        rights = " ".join([f"r:{name}" for name in r["read"]] + [f"w:{name}" for name in r["write"]]
                          + (["operator"] if r["operator"] else [])
                          + ([f"agreement:{r['agreement']}"] if r.get("agreement") else [])
                          + ([f"cert:{r['certificate'][:16]}"] if r.get("certificate") else []))
        lines.append((r["id"], r["organisation"], rights or "-", r["label"] or "-", r["created"][:19] + "Z",
                      r["expires"][:19] + "Z" if r["expires"] else "never", r["state"]))
    return "\n".join(aligned(lines))


def _known(node: Any, token_id: str) -> None:
    """A token id the node has; else the one-line not-found that points at the list."""
    if node.store.get_token(token_id) is None:
        raise CliError(f"no token {token_id!r}; see `kizuna tokens list`", code="not-found")


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens: organisation, rights per collection, label, dates and state (never secrets)."""
    rows = describe_tokens(node_of(ctx).store, now_micros())
    emit(as_json, {"tokens": rows}, _table(rows))


@tokens.command("revoke")
@click.argument("token_id", type=token_id_type)
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke a token at once, for every server process."""
    node_of(ctx).revoke_token(token_id)
    emit(as_json, {"id": token_id, "revoked": True}, f"Token {token_id} revoked")


@tokens.command("bind")
@click.argument("token_id", type=token_id_type)
@click.argument("agreement_id")
@json_option
@click.pass_context
def tokens_bind(ctx: click.Context, token_id: str, agreement_id: str, as_json: bool) -> None:
    """Bind an existing token to an agreement (it then reads under that agreement only)."""
    node = node_of(ctx)
    record = node.store.get_token(token_id)
    if record is None:
        raise CliError(f"no token {token_id!r}; see `kizuna tokens list`", code="not-found")
    agreement = node.policy.agreement(agreement_id)
    if agreement is None:
        raise CliError(f"no agreement {agreement_id!r}", code="not-found")
    if (problem := agreement_binding_problem(agreement, record.organisation_id)) is not None:
        raise CliError(problem)
    node.store.set_token_agreement(token_id, agreement_id)
    node.audit.record("token-bound", "admin", {"token": token_id, "agreement": agreement_id})
    emit(as_json, {"id": token_id, "agreement": agreement_id}, f"Token {token_id} reads under {agreement_id}")


@tokens.command("operator")
@click.argument("token_id", type=token_id_type)
@click.option("--withdraw", is_flag=True, help="Take the operator right away instead of granting it.")
@json_option
@click.pass_context
def tokens_operator(ctx: click.Context, token_id: str, withdraw: bool, as_json: bool) -> None:
    """Let TOKEN_ID use the console's operator pages (partners, agreements, tokens, audit, import).

    Only a token of the node's own organisation, not bound to an agreement, may hold the right.
    """
    node = node_of(ctx)
    if node.store.get_token(token_id) is None:
        raise CliError(f"no token {token_id!r}; see `kizuna tokens list`", code="not-found")
    changed = set_operator_right(node, token_id, not withdraw)
    verb = "does not hold" if withdraw else "holds"
    emit(as_json, {"id": token_id, "operator": not withdraw, "changed": changed},
         f"Token {token_id} {verb} the operator right" + ("" if changed else " (unchanged)"))

@tokens.command("bind-cert")
@click.argument("token_id", type=token_id_type)
@click.option("--cert-fingerprint", default=None, metavar="SHA256",
              help="SHA-256 fingerprint of the client certificate (hex, colons allowed).")
@click.option("--cert", "cert_file", default=None, type=click.Path(dir_okay=False),
              help="Read the fingerprint from this PEM certificate instead.")
@click.option("--unbind", is_flag=True, help="Remove the binding: the token works without a certificate again.")
@json_option
@click.pass_context
def tokens_bind_cert(ctx: click.Context, token_id: str, cert_fingerprint: str | None, cert_file: str | None,
                     unbind: bool, as_json: bool) -> None:
    """Bind a token to a client certificate: it is then refused on any connection without that certificate."""
    fingerprint = _fingerprint(cert_fingerprint, cert_file)
    if (fingerprint is None) != unbind:
        raise CliError("give --cert-fingerprint or --cert, or --unbind", code="usage")
    node = node_of(ctx)
    _known(node, token_id)
    bound = node.bind_token_certificate(token_id, fingerprint)
    emit(as_json, {"id": token_id, "certificate": bound},
         f"Token {token_id} now needs the client certificate {bound}" if bound
         else f"Token {token_id} works without a client certificate")


@tokens.command("rotate")
@click.argument("token_id", type=token_id_type)
@click.option("--grace", default="1h", show_default=True, metavar="DURATION",
              help="How long the old secret keeps working (90s, 30m, 12h, 7d, at most 90 days; 0 ends it now).")
@json_option
@click.pass_context
def tokens_rotate(ctx: click.Context, token_id: str, grace: str, as_json: bool) -> None:
    """Give a token a new secret, printed once; the old secret works until the grace period ends."""
    node = node_of(ctx)
    _known(node, token_id)
    secret, until = node.rotate_token(token_id, grace)
    ended = until <= now_micros()  # --grace 0
    emit(as_json, {"id": token_id, "token": secret, "previous_valid_until": format_timestamp(until)},
         f"Token {token_id} rotated; the old secret "
         + ("no longer works. " if ended else f"works until {format_timestamp(until)}. ")
         + f"Store the new secret now; it is not shown again:\n{secret}")


@click.group("cursor-keys")
def cursor_keys() -> None:
    """The keys that seal TAXII 'next' cursors."""


@cursor_keys.command("rotate")
@click.option("--keep", default=2, show_default=True, type=click.IntRange(min=0, max=20),
              help="Older keys that still verify cursors already handed out (0: only the new key).")
@json_option
@click.pass_context
def cursor_keys_rotate(ctx: click.Context, keep: int, as_json: bool) -> None:
    """Sign new cursors with a new key; cursors from the KEEP newest old keys keep working."""
    current, retired = node_of(ctx).rotate_cursor_key(keep)
    # The retired keys counted, and their ids named as ids: the node's first key has the id 0, read as a count.
    s = "s" if len(retired) != 1 else ""
    emit(as_json, {"key_id": current, "retired": retired},
         f"Cursors are now signed with key {current}"
         + (f"; retired {len(retired)} key{s} (id{s} {', '.join(retired)}): their cursors are refused" if retired
            else "")
         + ". Running servers switch within a minute.")


def register(group: click.Group) -> None:
    group.add_command(tokens)
    group.add_command(cursor_keys)
