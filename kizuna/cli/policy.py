"""``kizuna agreements`` and ``kizuna policy``: what each partner may receive, and the operator options."""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

import click
import orjson

from kizuna.cli.common import (
    TLP_LEVEL_NAMES,
    CliError,
    Toggle,
    emit,
    given_values,
    json_option,
    node_of,
    split_values,
    tlp_level,
)
from kizuna.core.node import Node
from kizuna.core.policy_source import agreement_body, options_to_json
from kizuna.policy import Agreement, TlpLevel, relayed_amber_reach


def _agreement_json(agreement: Agreement) -> dict[str, Any]:
    return {"id": agreement.agreement_id, "version": agreement.version, **agreement_body(agreement)}


@click.group()
def agreements() -> None:
    """Partner agreements: what each partner may receive (versioned; every change is a new version)."""


@agreements.command("set")
@click.argument("agreement_id")
@click.option("--partner", default=None, help="Partner organisation (name or identity id) or node:<name>.")
@click.option("--collections", "collections", multiple=True, help="Collections it covers (id, alias or *).")
@click.option("--producers", "producers", multiple=True, help="Producer identity ids it releases (or *).")
@click.option("--max-tlp", type=tlp_level, default=None, help="Highest TLP released.")
@click.option("--releasability", "releasability", multiple=True,
              help="REL TO tokens (countries, identity ids) the partner satisfies.")
@click.option("--anonymise-producer/--keep-producer", cls=Toggle, default=None,
              help="Replace producers' identities with the node's anonymous identity in what the partner gets.")
@click.option("--sightings-flow-back/--no-sightings-flow-back", cls=Toggle, default=None,
              help="Send sightings of the partner's indicators back to it.")
@click.option("--amber-to-clients/--no-amber-to-clients", cls=Toggle, default=None,
              help="Whether TLP:AMBER the partner receives may reach the partner's own clients.")
@json_option
@click.pass_context
def agreements_set(
    ctx: click.Context, agreement_id: str, partner: str | None, collections: tuple[str, ...],
    producers: tuple[str, ...], max_tlp: str | None, releasability: tuple[str, ...],
    anonymise_producer: bool | None, sightings_flow_back: bool | None, amber_to_clients: bool | None,
    as_json: bool,
) -> None:
    """Create an agreement or store a new version of it (unset options keep their current value)."""

    # An agreement that covers no collection or releases no producer shares nothing.
    listed_collections = given_values("--collections", collections, " (an id, or * for all)")
    listed_producers = given_values("--producers", producers, " (an id, or * for all)")
    node = node_of(ctx)
    entry_notes = _partner_entry_notes(node, partner, agreement_id)  # refused before anything is stored
    current = node.policy.agreement(agreement_id)
    if current is None and partner is None:
        raise CliError(f"a new agreement needs --partner ({agreement_id!r} does not exist)", code="usage")
    base = current or Agreement(agreement_id, 0, partner or "")
    if current is not None and partner is not None:
        found = node.store.get_organisation(partner)
        base = replace(base, partner=found.id if found else partner)
    settings: dict[str, Any] = {
        "collections": listed_collections or sorted(base.collections),
        "producers": listed_producers or sorted(base.producers),
        "max_tlp": TlpLevel.from_token(max_tlp) if max_tlp else base.max_tlp,
        "releasability": split_values(releasability) if releasability else sorted(base.releasability),
        "anonymise_producer": base.anonymise_producer if anonymise_producer is None else anonymise_producer,
        "sightings_flow_back": base.sightings_flow_back if sightings_flow_back is None else sightings_flow_back,
        "amber_extends_to_clients": base.amber_extends_to_clients if amber_to_clients is None
        else amber_to_clients,
    }
    stored = node.set_agreement(agreement_id, partner or base.partner, **settings)
    notes: list[str] = []
    reach = relayed_amber_reach(stored, node.policy.context())
    if reach in ("peer", "withheld"):
        # TLP 2.0 lets a recipient pass AMBER on to its own organisation and its clients only, so the visibility
        # check withholds AMBER received from a partner node from anyone else, whatever the agreement says.
        home = node.home_organisation_id or ""
        home_org = node.store.get_organisation(home)
        patron = shlex.quote(home_org.name if home_org else home)
        if reach == "peer":
            notes.append(f"TLP:AMBER that this node received from partner nodes reaches {stored.partner} only "
                         "if the organisation its partner entry names (--org) is a client of this node's "
                         f"organisation: TLP 2.0 lets AMBER go on only to the recipient's clients (kizuna "
                         f"policy org ORG --client-of {patron})")
        else:
            org = node.store.get_organisation(stored.partner)
            name = org.name if org else stored.partner
            notes.append(f"TLP:AMBER that this node received from partner nodes does not reach {name}, which is "
                         "not a client of this node's organisation: TLP 2.0 lets AMBER go on only to the "
                         f"recipient's clients (kizuna policy org {shlex.quote(name)} --client-of {patron} "
                         "makes it one)")
    notes += entry_notes
    emit(as_json, {**_agreement_json(stored), "notes": notes},
         f"Agreement {stored.agreement_id} is now version {stored.version}"
         + "".join(f"\nnote: {note}" for note in notes))


def _partner_entry_notes(node: Node, partner: str | None, agreement_id: str) -> list[str]:
    """Refuse a ``node:<name>`` that can name no partner entry (empty, not a partner name, or another case of an
    existing one); note one that names no partner entry yet (`partners add NAME --agreement ID` binds it, and
    needs the agreement first)."""
    if partner is None or not partner.startswith("node:"):
        return []
    from kizuna.federation.config import partner_name_problem  # the federation room, only for node:<name>
    from kizuna.federation.state import FederationState

    name = partner.removeprefix("node:")
    if (problem := partner_name_problem(name)) is not None:
        raise CliError(f"--partner {partner}: {problem}", code="usage")
    known = FederationState(node.store).partner_names()
    if name in known:
        return []
    if (other := next((k for k in known if k.casefold() == name.casefold()), None)) is not None:
        raise CliError(f"--partner {partner}: no partner entry {name!r}; the partner entry is {other!r} "
                       f"(give --partner node:{other})", code="usage")
    return [f"no partner entry {name!r} yet: the agreement applies once `kizuna partners add {name} … "
            f"--agreement {shlex.quote(agreement_id)}` adds one (`kizuna partners list` shows the partner entries)"]


@agreements.command("remove")
@click.argument("agreement_id")
@json_option
@click.pass_context
def agreements_remove(ctx: click.Context, agreement_id: str, as_json: bool) -> None:
    """Remove an agreement: it releases nothing from now on (a last version records the removal).

    Tokens and partners still bound to it read nothing until bound to another agreement; they are listed.
    `agreements set` with --partner makes it again, as a later version."""
    from kizuna.federation.state import FederationState  # the partner entries bound to it, named in the result

    node = node_of(ctx)
    removed, tokens = node.remove_agreement(agreement_id)
    # Every entry, an unusable one aside (one corrupt entry must not stop the removal).
    partners = [name for name, config, _ in FederationState(node.store).partner_entries()
                if config is not None and config.agreement == agreement_id]
    names = node.identity_names(t.organisation_id for t in tokens)
    bound_tokens = [{"id": t.id, "organisation": names.get(t.organisation_id, t.organisation_id), "label": t.label}
                    for t in tokens]
    lines = [f"Agreement {agreement_id} removed (version {removed.version}): it releases nothing from now on"]
    if bound_tokens or partners:
        lines.append("still bound to it, and reading nothing until bound to another agreement (`tokens bind`, "
                     "or `partners remove` and `partners add --agreement`):")
        lines += [f"  token {t['id']} ({t['organisation']}{', ' + t['label'] if t['label'] else ''})"
                  for t in bound_tokens]
        lines += [f"  partner {name}" for name in partners]
    emit(as_json, {**_agreement_json(removed), "tokens": bound_tokens, "partners": partners}, "\n".join(lines))


@agreements.command("list")
@json_option
@click.pass_context
def agreements_list(ctx: click.Context, as_json: bool) -> None:
    """List the current version of every agreement."""

    node = node_of(ctx)
    ctx_policy = node.policy.context()
    found = sorted(ctx_policy.agreements(), key=lambda a: a.agreement_id)
    names = {o.id: o.name for o in node.store.list_organisations()}
    collection_names = {c.id: c.alias or c.title for c in node.store.list_collections()}

    def partner_name(agreement: Agreement) -> str | None:
        # A partner is an organisation (named here) or a node:<name> entry, which is its own name.
        return names.get(agreement.partner)

    def covered(agreement: Agreement) -> list[str]:
        return sorted(collection_names.get(c, c) for c in agreement.collections)

    # The text names partners and collections as the operator does; --json keeps the stored ids beside the names.
    rows = [{**_agreement_json(a), "partner_name": partner_name(a), "collection_names": covered(a)} for a in found]
    emit(as_json, {"agreements": rows},
          "\n".join(f"{a.agreement_id}  v{a.version}  {partner_name(a) or a.partner}  max {a.max_tlp.label}  "
                    f"collections {', '.join(covered(a)) or '-'}" for a in found)
         or "No agreements.")


@agreements.command("show")
@click.argument("agreement_id")
@json_option
@click.pass_context
def agreements_show(ctx: click.Context, agreement_id: str, as_json: bool) -> None:
    """Show every version of one agreement, oldest first."""

    history = node_of(ctx).agreement_history(agreement_id)
    if not history:
        raise CliError(f"no agreement {agreement_id!r}", code="not-found")  # as `agreements remove` says it
    payload = {"id": agreement_id, "versions": [_agreement_json(a) for a in history]}
    node = node_of(ctx)
    names = {o.id: o.name for o in node.store.list_organisations()}
    names |= {c.id: c.alias or c.title for c in node.store.list_collections()}

    def named(values: Any) -> str:
        return ", ".join(names.get(v, v) for v in sorted(values)) or "-"

    # The text names organisations and collections as the operator does; --json keeps the stored ids.
    text = "\n".join(
        f"{agreement_id} v{a.version}{' (removed)' if a.removed else ''}\n"
        f"  partner:        {names.get(a.partner, a.partner)}\n"
        f"  collections:    {named(a.collections)}\n  producers:      {named(a.producers)}\n"
        f"  max TLP:        {a.max_tlp.label}\n  releasability:  {named(a.releasability)}\n"
        f"  anonymise producer: {'yes' if a.anonymise_producer else 'no'}; sightings flow back: "
        f"{'yes' if a.sightings_flow_back else 'no'}; AMBER to clients: "
        f"{'yes' if a.amber_extends_to_clients else 'no'}" for a in history)
    emit(as_json, payload, text)


@click.group("policy")
def policy() -> None:
    """The node's read policy: shared communities, organisation groups and operator options."""


@policy.command("communities")
@click.argument("communities", nargs=-1)
@click.option("--none", "share_with_none", is_flag=True, help="Share TLP:GREEN with no community.")
@json_option
@click.pass_context
def policy_communities(ctx: click.Context, communities: tuple[str, ...], share_with_none: bool, as_json: bool) -> None:
    """Set the communities this node shares TLP:GREEN with (names, or comma lists); with none given, show them.

    Giving names replaces the list; --none empties it.
    """
    node = node_of(ctx)
    names = split_values(communities)
    if share_with_none and names:
        raise CliError("give community names or --none, not both", code="usage", exit_code=2)
    if names is not None and not names:
        raise CliError(f"no community name in {' '.join(communities)!r}", code="usage", exit_code=2)
    # Looking must never change anything: the bare command used to empty the list.
    shared = node.set_shared_communities(names or []) if names or share_with_none else node.shared_communities()
    emit(as_json, {"shared_communities": shared}, "TLP:GREEN is shared with: " + (", ".join(shared) or "nobody"))


@policy.command("org")
@click.argument("organisation")
@click.option("--community", "communities", multiple=True, help="Communities it belongs to (repeatable).")
@click.option("--no-communities", "no_communities", is_flag=True, help="It belongs to no community.")
@click.option("--client-of", "client_of", multiple=True, help="Organisations it is a client of.")
@json_option
@click.pass_context
def policy_org(ctx: click.Context, organisation: str, communities: tuple[str, ...], no_communities: bool,
               client_of: tuple[str, ...], as_json: bool) -> None:
    """Set an organisation's communities and patrons (unset options keep their value)."""

    # An empty name is refused as `policy communities ""` refuses it: --no-communities says "none" on purpose.
    names = given_values("--community", communities, " (a community name; --no-communities for none)")
    if no_communities and names:
        raise CliError("give --community names or --no-communities, not both", code="usage")
    node = node_of(ctx)
    groups = node.set_organisation_groups(organisation, [] if no_communities else names, split_values(client_of))

    def name(org_id: str) -> str:  # listings name organisations; --json keeps their ids
        found = node.store.get_organisation(org_id)
        return found.name if found is not None else org_id

    # A community the node does not share TLP:GREEN with gives the organisation nothing: most often a misspelt
    # name, which would silently withhold GREEN from a partner.
    shared = node.shared_communities()
    notes = [f"this node does not share TLP:GREEN with community {community!r} (it shares with "
             f"{', '.join(repr(c) for c in shared) or 'none'}: kizuna policy communities), so "
             f"{name(groups.organisation_id)} receives no TLP:GREEN through it"
             for community in groups.communities if community not in shared] if names else []
    emit(as_json, {"organisation": groups.organisation_id, "organisation_name": name(groups.organisation_id),
                    "communities": list(groups.communities), "client_of": list(groups.client_of),
                    "client_of_names": [name(o) for o in groups.client_of], "notes": notes},
          f"{name(groups.organisation_id)}: communities {', '.join(groups.communities) or '-'}; "
          f"client of {', '.join(name(o) for o in groups.client_of) or '-'}"
          + "".join(f"\nnote: {note}" for note in notes))


@policy.command("options")
@click.option("--unknown-markings", type=click.Choice(["deny", "carry"]), default=None,
              help="Objects with marking definitions this node does not know: withhold (deny) or pass on (carry).")
@click.option("--unenforced-markings", type=click.Choice(["deny", "carry"]), default=None,
              help="Objects with known markings Kizuna cannot enforce: withhold (deny) or pass on (carry).")
@click.option("--unmarked-tlp", type=click.Choice([*TLP_LEVEL_NAMES, "none"], case_sensitive=False), default=None,
              help="TLP level assumed for objects without a TLP marking (none: no assumption).")
@click.option("--own-organisation-sees-everything/--own-organisation-sees-as-partner", "home_sees_everything",
              cls=Toggle, default=None,
              help="Tokens of the node's own organisation (not bound to an agreement) read everything the node "
                   "stores (default), or only what the markings would give a partner organisation.")
@click.option("--admins-see-everything/--admins-see-as-organisation", cls=Toggle, default=None,
              help="Whether node administrator principals bypass markings (docs/policy.md, admins_see_everything).")
@click.option("--agreement-caps-recipients/--agreement-does-not-cap-recipients", cls=Toggle, default=None,
              help="Whether an agreement also limits what TLP:RED recipients named on an object receive.")
@json_option
@click.pass_context
def policy_options(ctx: click.Context, unknown_markings: str | None, unenforced_markings: str | None,
                   unmarked_tlp: str | None, home_sees_everything: bool | None, admins_see_everything: bool | None,
                   agreement_caps_recipients: bool | None, as_json: bool) -> None:
    """Show or change operator options (see docs/policy.md); no option given: show them."""

    node = node_of(ctx)
    options = node.policy.context().options
    changes: dict[str, Any] = {}
    if unknown_markings:
        changes["unknown_markings"] = unknown_markings
    if unenforced_markings:
        changes["unenforced_markings"] = unenforced_markings
    if unmarked_tlp:
        changes["unmarked_tlp"] = None if unmarked_tlp == "none" else TlpLevel.from_token(unmarked_tlp)
    if home_sees_everything is not None:
        changes["home_organisation_sees_everything"] = home_sees_everything
    if admins_see_everything is not None:
        changes["admins_see_everything"] = admins_see_everything
    if agreement_caps_recipients is not None:
        changes["agreement_caps_recipients"] = agreement_caps_recipients
    if changes:
        options = replace(options, **changes)
        node.set_policy_options(options)
    payload = orjson.loads(options_to_json(options))
    # The text spells values as the JSON and the options do (none, true), not as Python (None, True).
    emit(as_json, payload, "\n".join(f"{k} = {_spelt(v)}" for k, v in payload.items()))


def _spelt(value: Any) -> str:
    if value is None:
        return "none"
    return orjson.dumps(value).decode() if isinstance(value, bool) else str(value)


def register(group: click.Group) -> None:
    group.add_command(agreements)
    group.add_command(policy)
