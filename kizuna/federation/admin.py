"""Adding a partner: everything that can be checked is checked before the configuration is stored.

A partner configuration that cannot work (a URL without a host, a token that an HTTP header cannot
carry, a certificate file that is not there, a mapping to a collection this node does not have)
is refused at ``kizuna partners add`` with one sentence saying what to fix, instead of failing at
every scheduled sync afterwards. Then, unless told not to, the partner itself is asked once
(partner_probe.py): a definite "no" from it refuses the add too, and anything less is a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from kizuna.core.errors import KizunaError
from kizuna.core.node import Node, agreement_binding_problem
from kizuna.core.principal import NODE_ADMIN
from kizuna.federation.config import (
    FEED_REMOTE,
    MISP_FEED,
    CollectionMapping,
    ConfigProblem,
    Direction,
    PartnerConfig,
    check_http_url,
    check_tls_over_https,
    is_collection_ref,
    parse_pin,
)
from kizuna.federation.partner_probe import probe_misp_feed, probe_taxii_partner
from kizuna.federation.state import FederationState
from kizuna.federation.tls import tls_files_problem


def check_api_root_url(url: str) -> None:
    """An http(s) URL with a host, ending with ``/`` (collection paths are resolved against it)."""
    check_http_url(url, "--url")
    path = urlsplit(url).path
    if not path.endswith("/"):
        raise ConfigProblem(f"--url {url!r} must be the API root URL ending with '/', e.g. {url}/")
    if path.rstrip("/").endswith("/taxii2") or path.rstrip("/") == "taxii2":
        # The discovery URL lists the API roots; the partner's data is under one of them (TAXII 2.1, 4.1).
        raise ConfigProblem(f"--url {url!r} is the server's discovery URL; give one of the API roots it lists "
                            "(`kizuna doctor URL` shows them), e.g. https://host/main/")


def misp_feed_location(location: str) -> str:
    """The stored form of a feed: its http(s) URL ending with '/', or the absolute file:// URL of a directory
    (given as ``file://…`` or as a path). Whether the feed's manifest.json is there is asked by the probe,
    for a directory as for a URL (partner_probe.py)."""
    if location.startswith(("http://", "https://")):
        check_http_url(location, "--misp-feed")
        parts = urlsplit(location)
        return urlunsplit(parts._replace(path=parts.path if parts.path.endswith("/") else parts.path + "/"))
    if location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ConfigProblem(f"--misp-feed {location!r}: a file:// URL must name a local path (file:///…)")
        path = Path(unquote(parts.path))
    elif "://" in location:
        raise ConfigProblem(f"--misp-feed {location!r} must be an http://, https:// or file:// URL or a directory")
    else:
        path = Path(location).expanduser()
    try:
        return path.resolve().as_uri()
    except (OSError, ValueError) as exc:
        raise ConfigProblem(f"--misp-feed {location[:200]}: not a usable path ({exc})") from None


def readable_file(option: str, path: str | None) -> str | None:
    """The absolute path of an existing readable file (the worker may run from another directory)."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if resolved.is_dir():
        raise ConfigProblem(f"{option} {path}: is a directory, not a file")
    if not resolved.is_file():
        raise ConfigProblem(f"{option} {path}: no such file")
    if not os.access(resolved, os.R_OK):
        raise ConfigProblem(f"{option} {path}: not readable by this user")
    try:
        with resolved.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigProblem(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None
    return str(resolved)


@dataclass(frozen=True)
class AddedPartner:
    """A stored partner, with what asking it found (``asked`` False: added with ``--no-check``)."""

    config: PartnerConfig
    asked: bool
    notes: list[str] = field(default_factory=list)


def _ask(config: PartnerConfig, ask_partner: bool) -> AddedPartner:
    """The probe's notes (a definite refusal from the partner is the ConfigProblem that refuses the add)."""
    if not ask_partner:
        return AddedPartner(config, asked=False)
    probe = probe_misp_feed if config.is_misp_feed else probe_taxii_partner
    return AddedPartner(config, asked=True, notes=probe(config))


def check_remote_collection(mapping: CollectionMapping) -> None:
    remote = mapping.remote
    if not is_collection_ref(remote):
        raise ConfigProblem(f"--map {mapping.local}={remote}: the remote collection must be an id or alias "
                            "(printable ASCII, no '/', '?', '#' or '%')")


def _check_name_is_new(state: FederationState, name: str) -> None:
    """Refuse a name taken already, also in another case: `sync uk` beside `sync UK` would be one typo from
    syncing the other partner, and the lists would show two names an operator reads as one."""
    for known in state.partner_names():
        if known == name:
            raise ConfigProblem(f"a partner named {name!r} already exists (remove it first to change it)")
        if known.casefold() == name.casefold():
            raise ConfigProblem(f"a partner named {known!r} already exists; names that differ only in case are "
                                "refused (remove it first to rename it)")


def add_partner(
    node: Node, name: str, url: str, maps: tuple[str, ...], *, token: str | None = None,
    basic_auth: str | None = None, client_cert: str | None = None, client_key: str | None = None,
    ca_file: str | None = None, organisation: str | None = None, agreement: str | None = None,
    schedule_s: int = 300, page_size: int = 1000, pin_sha256: str | None = None, ask_partner: bool = True,
) -> AddedPartner:
    """Check a new partner's configuration, ask the partner (unless ``ask_partner`` is False) and store it;
    raise :class:`ConfigProblem` for the first fault."""
    state = FederationState(node.store)
    _check_name_is_new(state, name)
    check_api_root_url(url)
    check_tls_over_https(url, {"--pin": pin_sha256, "--cert": client_cert, "--key": client_key, "--ca": ca_file})
    mappings = tuple(CollectionMapping.parse(text) for text in maps)
    pairs = [(m.local, m.remote) for m in mappings]
    if len(set(pairs)) != len(pairs):
        twice = next(p for p in pairs if pairs.count(p) > 1)
        raise ConfigProblem(f"--map {twice[0]}={twice[1]} is given more than once; one mapping says both "
                            "directions (LOCAL=REMOTE:both)")
    if token is not None and token.strip() != token.strip().strip("'\""):
        raise ConfigProblem("--token is wrapped in quotes; give the token itself (the shell removes one pair of "
                            "quotes, not two)")
    for mapping in mappings:
        try:
            node.find_collection(mapping.local)
        except KizunaError:
            raise ConfigProblem(f"--map {mapping.local}={mapping.remote}: this node has no collection "
                                f"{mapping.local!r} (see `kizuna collections list`)") from None
        check_remote_collection(mapping)
    organisation_id = None
    if organisation is not None:
        found = node.store.get_organisation(organisation)
        if found is None:
            raise ConfigProblem(f"no organisation {organisation!r}; create it with `kizuna orgs create`")
        if found.id == node.home_organisation_id:
            # The node's own organisation reads without any marking filter: a push would send it everything.
            raise ConfigProblem(f"--org {organisation}: {found.name!r} is this node's own organisation, which reads "
                                "everything unfiltered; a partner node belongs to another organisation (create it "
                                "with `kizuna orgs create`)")
        organisation_id = found.id
    if agreement is not None:
        found_agreement = node.policy.agreement(agreement)
        if found_agreement is None:
            # A partner whose agreement does not exist receives nothing (the policy fails closed): refused here.
            raise ConfigProblem(f"--agreement {agreement}: no agreement {agreement!r}; set one with "
                                "`kizuna agreements set` (`kizuna agreements list` shows them)")
        if (problem := agreement_binding_problem(found_agreement, organisation_id, name)) is not None:
            raise ConfigProblem(f"--agreement {agreement}: {problem}")
    client_cert, client_key = readable_file("--cert", client_cert), readable_file("--key", client_key)
    ca_file = readable_file("--ca", ca_file)
    if (problem := tls_files_problem(client_cert, client_key, ca_file)) is not None:
        raise ConfigProblem(problem)
    config = PartnerConfig(
        name=name, api_root_url=url, mappings=mappings, token=token, basic_auth=basic_auth,
        client_cert=client_cert, client_key=client_key, ca_file=ca_file, organisation=organisation_id,
        agreement=agreement,
        schedule_s=schedule_s, page_size=page_size,
        pin_sha256=parse_pin(pin_sha256) if pin_sha256 is not None else None,
    )
    added = _ask(config, ask_partner)
    state.add_partner(config)
    node.audit.record("partner-added", NODE_ADMIN.key, config.public())
    return added


def add_misp_feed_partner(
    node: Node, name: str, feed: str, collection: str, *, token: str | None = None, basic_auth: str | None = None,
    client_cert: str | None = None, client_key: str | None = None, ca_file: str | None = None,
    schedule_s: int = 300, ask_partner: bool = True,
) -> AddedPartner:
    """Check a MISP feed partner (the collection exists here; unless ``ask_partner`` is False, the feed's
    manifest answers) and store it."""
    state = FederationState(node.store)
    _check_name_is_new(state, name)
    location = misp_feed_location(feed)
    if location.startswith("file:") and (token or basic_auth or client_cert or client_key or ca_file):
        raise ConfigProblem("--token, --basic, --cert, --key and --ca apply to http(s) feeds, not to a directory")
    check_tls_over_https(location, {"--cert": client_cert, "--key": client_key, "--ca": ca_file})
    try:
        node.find_collection(collection)
    except KizunaError:
        raise ConfigProblem(f"--collection {collection}: this node has no collection {collection!r} "
                            "(see `kizuna collections list`)") from None
    client_cert, client_key = readable_file("--cert", client_cert), readable_file("--key", client_key)
    ca_file = readable_file("--ca", ca_file)
    if (problem := tls_files_problem(client_cert, client_key, ca_file)) is not None:
        raise ConfigProblem(problem)
    config = PartnerConfig(
        name=name, api_root_url=location, mappings=(CollectionMapping(collection, FEED_REMOTE, Direction.PULL),),
        token=token, basic_auth=basic_auth, client_cert=client_cert, client_key=client_key, ca_file=ca_file,
        schedule_s=schedule_s, kind=MISP_FEED,
    )
    added = _ask(config, ask_partner)
    state.add_partner(config)
    node.audit.record("partner-added", NODE_ADMIN.key, config.public())
    return added


def remove_partner(node: Node, name: str) -> bool:
    """Forget a partner's configuration (what it sent stays); False if there was none."""
    removed = FederationState(node.store).remove_partner(name)
    if removed:
        node.audit.record("partner-removed", NODE_ADMIN.key, {"name": name})
    return removed
