"""``kizuna metrics``: who may read ``/metrics`` when ``[metrics] access = "token"``."""

from __future__ import annotations

import click

from kizuna.cli.common import CliError, emit, json_option, node_of, token_id_type
from kizuna.core.health import issue_metrics_token, metrics_access, metrics_readers, set_metrics_right
from kizuna.core.tokens import refuse_unless_active, token_state
from kizuna.stix.timestamps import now_micros


@click.group()
def metrics() -> None:
    """Access to the Prometheus metrics at /metrics."""


@metrics.command("show")
@json_option
@click.pass_context
def metrics_show(ctx: click.Context, as_json: bool) -> None:
    """Show how /metrics is protected and which tokens hold the metrics right."""
    node = node_of(ctx)
    access = metrics_access(node.config)
    readers = sorted(metrics_readers(node.store))
    now = now_micros()
    holders = []
    for token_id in readers:
        record = node.store.get_token(token_id)
        org = node.store.get_organisation(record.organisation_id) if record is not None else None
        holders.append({"id": token_id, "organisation": org.name if org is not None else None,
                        "label": record.label if record is not None else None,
                        "state": token_state(record, now) if record is not None else "deleted"})
    how = ("loopback clients only" if access.mode == "loopback"
           else "clients presenting a token that holds the metrics right")
    listed = "".join(f"\n    {h['id']}  {h['organisation'] or '-'}  {h['label'] or '-'}  {h['state']}" for h in holders)
    emit(as_json, {"access": access.mode, "tokens": readers, "holders": holders},
         f"/metrics is served to {how}\n  tokens with the metrics right:{listed or ' none'}")


@metrics.command("token")
@click.option("--org", "org", required=True, help="Organisation name or identity id the token belongs to.")
@click.option("--label", default="metrics", show_default=True, help="A note for operators, shown by `tokens list`.")
@json_option
@click.pass_context
def metrics_token(ctx: click.Context, org: str, label: str, as_json: bool) -> None:
    """Create a token that may read /metrics and no collection; its secret is printed once."""
    token_id, secret = issue_metrics_token(node_of(ctx), org, label)
    emit(as_json, {"id": token_id, "token": secret, "metrics": True},
         f"Token {token_id} created with the metrics right only. Store the secret now; it is not shown again:\n"
         f"{secret}")


def _change(ctx: click.Context, token_id: str, granted: bool, as_json: bool) -> None:
    node = node_of(ctx)
    # A revoke may name a token since deleted that still holds the right; any other unknown id is a mistake.
    record = node.store.get_token(token_id)
    if record is None and (granted or token_id not in metrics_readers(node.store)):
        raise CliError(f"no token {token_id!r}; see `kizuna tokens list`", code="not-found")
    if granted and record is not None:
        refuse_unless_active(record, "it cannot sign in to read /metrics")
        if record.agreement_id is not None:
            # /metrics names and counts every collection, those the agreement hides included.
            raise CliError(f"token {token_id} reads under agreement {record.agreement_id!r} (a partner's token), "
                           "and /metrics counts every collection; give the right to a token of its own "
                           "(`kizuna metrics token`)")
    changed = set_metrics_right(node, token_id, granted)
    said = {(True, True): "now holds the metrics right", (True, False): "already held the metrics right",
            (False, True): "no longer holds the metrics right: withdrawn",
            (False, False): "did not hold the metrics right: nothing withdrawn"}[(granted, changed)]
    emit(as_json, {"id": token_id, "metrics": granted, "changed": changed}, f"Token {token_id} {said}")


@metrics.command("grant")
@click.argument("token_id", type=token_id_type)
@json_option
@click.pass_context
def metrics_grant(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Let TOKEN_ID read /metrics (used when [metrics] access = "token")."""
    _change(ctx, token_id, True, as_json)


@metrics.command("revoke")
@click.argument("token_id", type=token_id_type)
@json_option
@click.pass_context
def metrics_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Withdraw the metrics right of TOKEN_ID (every server process sees it at once)."""
    _change(ctx, token_id, False, as_json)


def register(group: click.Group) -> None:
    group.add_command(metrics)
