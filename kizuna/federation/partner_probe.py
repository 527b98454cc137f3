"""``partners add`` asks the partner once, before the configuration is stored, whether it can work.

The local checks (admin.py) catch what is wrong in the configuration itself; these catch what only the
partner can say: that it refuses the token, that a mapped collection is not there or not open to it, or
that a MISP feed has no manifest.json.
Such a definite answer refuses the add (the first sync would fail the same way, at every schedule). A
partner that cannot be reached now, or answers in a way that proves nothing (a server error, a page
that is not TAXII), is only noted: a partner may be down today and up tomorrow, and ``--no-check``
adds one that is not up yet without asking it at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from kizuna.federation.client import PartnerError, TaxiiClient
from kizuna.federation.config import CollectionMapping, ConfigProblem, PartnerConfig
from kizuna.federation.misp_feed import MANIFEST, HttpFeed, feed_directory, parse_manifest

#: Seconds the check waits for each answer: long enough for a partner across the world, short enough
#: that adding a partner that is down does not look like a hang.
PROBE_TIMEOUT_S = 5.0

_NO_CHECK = "give --no-check to add it anyway"


def probe_taxii_partner(partner: PartnerConfig, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """Ask the API root and its collection list with the partner's token and TLS settings, as a sync
    would; raise :class:`ConfigProblem` when the partner refuses the token or a mapped collection."""
    notes: list[str] = []
    with TaxiiClient(partner, timeout_s=timeout_s) as client:
        root = _taxii_get(client, "", notes)
        if root is None:
            return notes
        if not isinstance(root, dict) or not isinstance(root.get("versions"), list):
            # Not proven to be a TAXII server: what it would answer for collections/ would prove nothing either.
            notes.append(f"GET {partner.base_url} did not answer a TAXII API root (it lists no versions), so "
                                "the mapped collections were not checked; is --url the API root? (`kizuna doctor "
                                "URL` checks the server)")
            return notes
        listing = _taxii_get(client, "collections/", notes)
    if listing is None:
        return notes
    listed = listing.get("collections", []) if isinstance(listing, dict) else None
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        notes.append(f"{partner.base_url}collections/ did not answer a TAXII collection list, so the "
                            "mapped collections were not checked")
        return notes
    for mapping in partner.mappings:
        _check_mapping(partner, mapping, listed)
    return notes


def _taxii_get(client: TaxiiClient, path: str, notes: list[str]) -> Any | None:
    """The JSON body of a GET; None (with a note) when the partner cannot be asked now or answers no JSON."""
    partner = client.partner
    url = partner.base_url + path
    try:
        response = client.get(path)
    except PartnerError as exc:
        if exc.status_code == 404:
            notes.append(f"GET {url} answered 404; is --url the API root? (`kizuna doctor URL` checks the "
                                "server and lists its API roots)")
            return None
        if exc.status_code in (401, 403):
            credentials = "the token" if partner.token else "the basic credentials" if partner.basic_auth else \
                "a request without credentials (give --token or --basic)"
            raise ConfigProblem(f"{partner.name}: GET {url} answered {exc.status_code}: the partner refuses "
                                 f"{credentials}; check them with its operator, or {_NO_CHECK}") from None
        notes.append(_unreachable(partner, str(exc).removeprefix(f"{partner.name}: ")))
        return None
    if response.status_code != 200:
        notes.append(f"GET {url} answered {response.status_code}, not a TAXII answer; is --url the API "
                            "root? (`kizuna doctor URL` checks the server)")
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        notes.append(f"GET {url} answered 200 with a body that is not JSON; is --url the API root? "
                            "(`kizuna doctor URL` checks the server)")
        return None


def _unreachable(partner: PartnerConfig, why: str) -> str:
    return (f"could not ask {partner.name} now ({why}); it was added all the same, and `kizuna sync "
            f"{partner.name}` or the next scheduled run will try it")


def _check_mapping(partner: PartnerConfig, mapping: CollectionMapping, listed: list[dict[str, Any]]) -> None:
    """The remote collection is listed (by id or alias), readable for a pull and writable for a push
    (TAXII 2.1 5.1/5.2 ``can_read``/``can_write``)."""
    where = f"--map {mapping.local}={mapping.remote}"
    found = next((c for c in listed if mapping.remote in (c.get("id"), c.get("alias"))), None)
    if found is None:
        names = ", ".join(str(c.get("alias") or c.get("id")) for c in listed[:10]) or "none"
        more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
        raise ConfigProblem(f"{where}: {partner.name} lists no collection {mapping.remote!r} to this token "
                             f"(it lists: {names}{more}); fix the mapping, or {_NO_CHECK}")
    title = f"{mapping.remote!r} ({found['title']})" if isinstance(found.get("title"), str) else repr(mapping.remote)
    if mapping.direction.pulls and found.get("can_read") is not True:
        raise ConfigProblem(f"{where}: {partner.name} does not let this token read collection {title} "
                             f"(can_read is not true), so a pull cannot work; {_NO_CHECK}")
    if mapping.direction.pushes and found.get("can_write") is not True:
        raise ConfigProblem(f"{where}: {partner.name} does not let this token write to collection {title} "
                             f"(can_write is not true), so a push cannot work; {_NO_CHECK}")


def probe_misp_feed(partner: PartnerConfig, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """Ask the feed for its manifest.json, from its URL or its directory, as a run would; raise
    :class:`ConfigProblem` when the feed says it has none or refuses the credentials."""
    notes: list[str] = []
    directory = feed_directory(partner.api_root_url)
    body = _directory_manifest(directory) if directory is not None else _http_manifest(partner, timeout_s, notes)
    if body is not None:
        try:
            parse_manifest(partner.name, body)
        except PartnerError as exc:
            notes.append(f"{str(exc).removeprefix(partner.name + ': ')}; the runs will fail until the feed "
                                "serves a MISP manifest")
    return notes


def _directory_manifest(directory: Path) -> bytes:
    """A local feed's manifest: a missing or unreadable file is as definite as a 404 or a 403 over HTTP."""
    path = directory / MANIFEST
    try:
        return path.read_bytes()
    except OSError as exc:
        why = "no directory with a manifest.json there" if isinstance(exc, FileNotFoundError | NotADirectoryError) \
            else f"cannot read {path} ({exc.strerror or exc})"
        raise ConfigProblem(f"--misp-feed {directory}: {why}; {_NO_CHECK} (a share not mounted yet)") from None


def _http_manifest(partner: PartnerConfig, timeout_s: float, notes: list[str]) -> bytes | None:
    url = urljoin(partner.base_url, MANIFEST)
    feed = HttpFeed(partner, timeout_s=timeout_s)
    try:
        return feed.manifest({}).body
    except PartnerError as exc:
        if exc.status_code in (401, 403, 404):
            why = "there is no manifest.json there" if exc.status_code == 404 else "the feed refuses the credentials"
            raise ConfigProblem(f"--misp-feed: GET {url} answered {exc.status_code}: {why}; {_NO_CHECK}") from None
        notes.append(_unreachable(partner, str(exc).removeprefix(f"{partner.name}: ")))
        return None
    except httpx.HTTPError as exc:  # anything the feed's client raised past its own wording
        notes.append(_unreachable(partner, str(exc)))
        return None
    finally:
        feed.close()
