"""``kizuna tokens``: API tokens, stored hashed, their secrets shown once."""

from __future__ import annotations

import click

from kizuna.cli.common import CliError, emit, json_option, node_of
from kizuna.stix.timestamps import format_timestamp


@click.group()
def tokens() -> None:
    """API tokens (stored hashed; the secret is shown once)."""


@tokens.command("create")
@click.option("--org", "org", required=True, help="Organisation name or identity id.")
@click.option("--read", "read", multiple=True, help="Collection id or alias it may read (repeatable).")
@click.option("--write", "write", multiple=True, help="Collection id or alias it may write (repeatable).")
@click.option("--label", default=None, help="A note for operators, shown by `tokens list`.")
@click.option("--agreement", default=None, help="Bind the token to this partner agreement.")
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, org: str, read: tuple[str, ...], write: tuple[str, ...],
                  label: str | None, agreement: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once and never stored."""
    node = node_of(ctx)
    if agreement is not None and node.policy.agreement(agreement) is None:
        raise CliError(f"no agreement {agreement!r}; create it with `kizuna agreements set`", code="not-found")
    token_id, secret = node.create_token(org, read, write, label, agreement)
    payload = {"id": token_id, "token": secret, **({"agreement": agreement} if agreement else {})}
    under = f" under agreement {agreement}" if agreement else ""
    emit(as_json, payload,
         f"Token {token_id} created{under}. Store the secret now; it is not shown again:\n{secret}")


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = node_of(ctx).store.list_tokens()
    rows = [
        {"id": t.id, "organisation": t.organisation_id, "label": t.label,
         "created": format_timestamp(t.created_at),
         "revoked": format_timestamp(t.revoked_at) if t.revoked_at else None,
         "grants": [{"collection_pk": g.collection_pk, "read": g.can_read, "write": g.can_write}
                    for g in t.grants]}
        for t in found
    ]
    emit(as_json, {"tokens": rows},
          "\n".join(f"{r['id']}  {r['organisation']}  {'revoked' if r['revoked'] else 'active'}" for r in rows))


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke a token at once, for every server process."""
    node_of(ctx).revoke_token(token_id)
    emit(as_json, {"id": token_id, "revoked": True}, f"Token {token_id} revoked")


@tokens.command("bind")
@click.argument("token_id")
@click.argument("agreement_id")
@json_option
@click.pass_context
def tokens_bind(ctx: click.Context, token_id: str, agreement_id: str, as_json: bool) -> None:
    """Bind an existing token to an agreement (it then reads under that agreement only)."""
    node = node_of(ctx)
    if node.store.get_token(token_id) is None:
        raise CliError(f"no token {token_id!r}", code="not-found")
    if node.policy.agreement(agreement_id) is None:
        raise CliError(f"no agreement {agreement_id!r}", code="not-found")
    node.store.set_token_agreement(token_id, agreement_id)
    node.audit.record("token-bound", "admin", {"token": token_id, "agreement": agreement_id})
    emit(as_json, {"id": token_id, "agreement": agreement_id}, f"Token {token_id} reads under {agreement_id}")


def register(group: click.Group) -> None:
    group.add_command(tokens)
