"""``kizuna agreements``, ``kizuna policy``, ``kizuna tokens bind`` and ``kizuna audit``: the policy
configuration and the audit log, from the command line.

Thin calls into :class:`kizuna.core.node.Node`, like the rest of the CLI.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import orjson

from kizuna.core.audit import unpack_served
from kizuna.core.policy_source import agreement_body
from kizuna.policy import Agreement, TlpLevel
from kizuna.stix.timestamps import format_timestamp

_TLP_CHOICES = [level.token for level in TlpLevel]


def _node(ctx: click.Context) -> Any:
    return ctx.obj["context"].node()


def _emit(as_json: bool, payload: Any, text: str) -> None:
    click.echo(orjson.dumps(payload).decode() if as_json else text)


def _run(fn: Any) -> Any:
    from kizuna.cli import _fail_cleanly

    return _fail_cleanly(fn)


def _split(values: tuple[str, ...]) -> list[str] | None:
    """Repeatable options that also accept comma lists; absent means 'leave as it is'."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _agreement_json(agreement: Agreement) -> dict[str, Any]:
    return {"id": agreement.agreement_id, "version": agreement.version, **agreement_body(agreement)}


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def agreements() -> None:
    """Partner agreements: what each partner may receive (versioned; every change is a new version)."""


@agreements.command("set")
@click.argument("agreement_id")
@click.option("--partner", default=None, help="Partner organisation (name or identity id) or node:<name>.")
@click.option("--collections", "collections", multiple=True, help="Collections it covers (id, alias or *).")
@click.option("--producers", "producers", multiple=True, help="Producer identity ids it releases (or *).")
@click.option("--max-tlp", type=click.Choice(_TLP_CHOICES), default=None, help="Highest TLP released.")
@click.option("--releasability", "releasability", multiple=True,
              help="REL TO tokens (countries, identity ids) the partner satisfies.")
@click.option("--anonymise-producer/--keep-producer", default=None)
@click.option("--sightings-flow-back/--no-sightings-flow-back", default=None)
@click.option("--amber-to-clients/--no-amber-to-clients", default=None)
@json_option
@click.pass_context
def agreements_set(
    ctx: click.Context, agreement_id: str, partner: str | None, collections: tuple[str, ...],
    producers: tuple[str, ...], max_tlp: str | None, releasability: tuple[str, ...],
    anonymise_producer: bool | None, sightings_flow_back: bool | None, amber_to_clients: bool | None,
    as_json: bool,
) -> None:
    """Create an agreement or store a new version of it (unset options keep their current value)."""

    def run() -> None:
        node = _node(ctx)
        current = node.policy.agreement(agreement_id)
        if current is None and partner is None:
            raise click.ClickException(f"a new agreement needs --partner ({agreement_id!r} does not exist)")
        base = current or Agreement(agreement_id, 0, partner or "")
        if current is not None and partner is not None:
            found = node.store.get_organisation(partner)
            base = replace(base, partner=found.id if found else partner)
        settings: dict[str, Any] = {
            "collections": _split(collections) or sorted(base.collections),
            "producers": _split(producers) or sorted(base.producers),
            "max_tlp": TlpLevel.from_token(max_tlp) if max_tlp else base.max_tlp,
            "releasability": _split(releasability) if releasability else sorted(base.releasability),
            "anonymise_producer": base.anonymise_producer if anonymise_producer is None else anonymise_producer,
            "sightings_flow_back": base.sightings_flow_back if sightings_flow_back is None else sightings_flow_back,
            "amber_extends_to_clients": base.amber_extends_to_clients if amber_to_clients is None
            else amber_to_clients,
        }
        stored = node.set_agreement(agreement_id, partner or base.partner, **settings)
        _emit(as_json, _agreement_json(stored),
              f"Agreement {stored.agreement_id} is now version {stored.version}")

    _run(run)()


@agreements.command("list")
@json_option
@click.pass_context
def agreements_list(ctx: click.Context, as_json: bool) -> None:
    """List the current version of every agreement."""

    def run() -> None:
        node = _node(ctx)
        ctx_policy = node.policy.context()
        found = sorted(ctx_policy.agreements(), key=lambda a: a.agreement_id)
        _emit(as_json, {"agreements": [_agreement_json(a) for a in found]},
              "\n".join(f"{a.agreement_id}  v{a.version}  {a.partner}  max {a.max_tlp.label}" for a in found))

    _run(run)()


@agreements.command("show")
@click.argument("agreement_id")
@json_option
@click.pass_context
def agreements_show(ctx: click.Context, agreement_id: str, as_json: bool) -> None:
    """Show every version of one agreement, oldest first."""

    def run() -> None:
        history = _node(ctx).agreement_history(agreement_id)
        if not history:
            raise click.ClickException(f"no agreement {agreement_id!r}")
        payload = {"id": agreement_id, "versions": [_agreement_json(a) for a in history]}
        _emit(as_json, payload, orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())

    _run(run)()


@click.group("policy")
def policy() -> None:
    """The node's read policy: shared communities, organisation groups and operator options."""


@policy.command("communities")
@click.argument("communities", nargs=-1)
@json_option
@click.pass_context
def policy_communities(ctx: click.Context, communities: tuple[str, ...], as_json: bool) -> None:
    """Set the communities this node shares TLP:GREEN with (none given: share GREEN with none)."""

    def run() -> None:
        shared = _node(ctx).set_shared_communities(communities)
        _emit(as_json, {"shared_communities": shared}, "TLP:GREEN is shared with: " + (", ".join(shared) or "nobody"))

    _run(run)()


@policy.command("org")
@click.argument("organisation")
@click.option("--community", "communities", multiple=True, help="Communities it belongs to (repeatable).")
@click.option("--client-of", "client_of", multiple=True, help="Organisations it is a client of.")
@json_option
@click.pass_context
def policy_org(ctx: click.Context, organisation: str, communities: tuple[str, ...],
               client_of: tuple[str, ...], as_json: bool) -> None:
    """Set an organisation's communities and patrons (unset options keep their value)."""

    def run() -> None:
        groups = _node(ctx).set_organisation_groups(organisation, _split(communities), _split(client_of))
        _emit(as_json, {"organisation": groups.organisation_id, "communities": list(groups.communities),
                        "client_of": list(groups.client_of)},
              f"{groups.organisation_id}: communities {', '.join(groups.communities) or '-'}; "
              f"client of {', '.join(groups.client_of) or '-'}")

    _run(run)()


@policy.command("options")
@click.option("--unknown-markings", type=click.Choice(["deny", "carry"]), default=None)
@click.option("--unenforced-markings", type=click.Choice(["deny", "carry"]), default=None)
@click.option("--unmarked-tlp", type=click.Choice([*_TLP_CHOICES, "none"]), default=None)
@click.option("--admins-see-everything/--admins-see-as-organisation", default=None)
@click.option("--agreement-caps-recipients/--agreement-does-not-cap-recipients", default=None)
@json_option
@click.pass_context
def policy_options(ctx: click.Context, unknown_markings: str | None, unenforced_markings: str | None,
                   unmarked_tlp: str | None, admins_see_everything: bool | None,
                   agreement_caps_recipients: bool | None, as_json: bool) -> None:
    """Show or change operator options (see docs/policy.md)."""

    def run() -> None:
        node = _node(ctx)
        options = node.policy.context().options
        changes: dict[str, Any] = {}
        if unknown_markings:
            changes["unknown_markings"] = unknown_markings
        if unenforced_markings:
            changes["unenforced_markings"] = unenforced_markings
        if unmarked_tlp:
            changes["unmarked_tlp"] = None if unmarked_tlp == "none" else TlpLevel.from_token(unmarked_tlp)
        if admins_see_everything is not None:
            changes["admins_see_everything"] = admins_see_everything
        if agreement_caps_recipients is not None:
            changes["agreement_caps_recipients"] = agreement_caps_recipients
        if changes:
            options = replace(options, **changes)
            node.set_policy_options(options)
        from kizuna.core.policy_source import options_to_json

        payload = orjson.loads(options_to_json(options))
        _emit(as_json, payload, "\n".join(f"{k} = {v}" for k, v in payload.items()))

    _run(run)()


@click.command("bind")
@click.argument("token_id")
@click.argument("agreement_id")
@json_option
@click.pass_context
def tokens_bind(ctx: click.Context, token_id: str, agreement_id: str, as_json: bool) -> None:
    """Bind an existing token to an agreement (it then reads under that agreement only)."""

    def run() -> None:
        node = _node(ctx)
        if node.store.get_token(token_id) is None:
            raise click.ClickException(f"no token {token_id!r}")
        if node.policy.agreement(agreement_id) is None:
            raise click.ClickException(f"no agreement {agreement_id!r}")
        node.store.set_token_agreement(token_id, agreement_id)
        node.audit.record("token-bound", "admin", {"token": token_id, "agreement": agreement_id})
        _emit(as_json, {"id": token_id, "agreement": agreement_id}, f"Token {token_id} reads under {agreement_id}")

    _run(run)()


@click.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the whole chain; exit 1 and name the first broken record if it was tampered with."""

    def run() -> None:
        result = _node(ctx).audit.verify()
        payload = {"ok": result.ok, "records": result.records, "problem": result.problem, "seq": result.seq}
        _emit(as_json, payload, f"audit log intact: {result.records} records" if result.ok
              else f"audit log BROKEN: {result.problem}")
        if not result.ok:
            ctx.exit(1)

    _run(run)()


@audit.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JSON lines here instead of standard output.")
@click.pass_context
def audit_export(ctx: click.Context, output: Path | None) -> None:
    """Write every audit record as one JSON object per line, oldest first.

    ``body`` is the record as sealed, so each line can be checked against its hash; an egress
    record also gets ``served``, its compactly stored (id, version) pairs spelt out.
    """

    def run() -> None:
        stream = output.open("wb") if output else sys.stdout.buffer
        try:
            for r in _node(ctx).audit.records():
                line: dict[str, Any] = {
                    "seq": r.seq, "at": format_timestamp(r.at), "kind": r.kind, "principal": r.principal,
                    "body": orjson.loads(r.body), "prev_hash": r.prev_hash, "hash": r.hash,
                }
                if r.kind == "egress" and "served" in line["body"]:
                    line["served"] = [list(pair) for pair in unpack_served(line["body"]["served"])]
                stream.write(orjson.dumps(line) + b"\n")
        finally:
            if output:
                stream.close()
            else:
                stream.flush()

    _run(run)()


def register(cli: click.Group) -> None:
    """Add the policy commands to the ``kizuna`` group (and ``--agreement`` to ``tokens create``)."""
    cli.add_command(agreements)
    cli.add_command(policy)
    cli.add_command(audit)
    tokens = cli.commands.get("tokens")
    if isinstance(tokens, click.Group):
        tokens.add_command(tokens_bind)
        create = tokens.commands.get("create")
        if create is not None and create.callback is not None:
            _add_agreement_option(create)


def _add_agreement_option(create: click.Command) -> None:
    """``tokens create --agreement ID``: the existing command keeps its contract; the token is bound after."""
    create.params.append(click.Option(["--agreement"], default=None,
                                      help="Bind the token to this partner agreement."))
    original = create.callback
    assert original is not None

    @click.pass_context
    def callback(ctx: click.Context, /, agreement: str | None = None, **kwargs: Any) -> Any:
        if agreement is None:
            return ctx.invoke(original, **kwargs)
        node = ctx.obj["context"].node()
        if node.policy.agreement(agreement) is None:
            raise click.ClickException(f"no agreement {agreement!r}; create it with `kizuna agreements set`")
        org = node.store.get_organisation(kwargs["org"])
        if org is None:
            raise click.ClickException(f"no organisation {kwargs['org']!r}; create it with `kizuna orgs create`")
        token_id, secret = _run(node.create_token)(
            kwargs["org"], kwargs["read"], kwargs["write"], kwargs["label"], agreement
        )
        _emit(kwargs["as_json"], {"id": token_id, "token": secret, "agreement": agreement},
              f"Token {token_id} created under agreement {agreement}. Store the secret now; "
              f"it is not shown again:\n{secret}")
        return None

    create.callback = callback
