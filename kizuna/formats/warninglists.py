"""MISP warninglists: values nobody should share as malicious (public resolvers, RFC 1918, empty files).

The lists are the data the ``pymispwarninglists`` package ships (the MISP project's
``misp-warninglists``); the operator chooses which ones a node applies, `DEFAULT_LISTS` otherwise.
A value on a list is *flagged*, not dropped: the indicator is kept with the names of the lists in
its ``x_kizuna_warninglists`` property, feed writers leave it out unless forced, and detection is
expected to ignore it (see docs/formats.md).

Matching follows the list's declared type, as MISP does: ``string`` is exact, ``hostname`` also
matches subdomains, ``substring`` matches anywhere, ``cidr`` matches addresses inside (and IOC blocks
that overlap) a listed network. Lookups are set and bisect operations built once per selection, so
flagging costs microseconds per value — the library's own search walks every list for every value.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import importlib.util
import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kizuna.formats.iocs import DOMAIN, EMAIL, HASH_KINDS, IPV4, IPV6, JA3, URL
from kizuna.stix.vocab import WARNINGLIST_PROPERTY

#: Lists applied when the operator chooses none: values that are benign or meaningless everywhere.
#: Lists of popular sites are left out on purpose: their ``hostname`` semantics would also flag every
#: subdomain of a hosting platform, where malicious content lives.
DEFAULT_LISTS: Final = (
    "public-dns-v4", "public-dns-v6", "public-dns-hostname",
    "rfc1918", "rfc3849", "rfc5735", "rfc6598", "rfc6761", "multicast", "ipv6-linklocal",
    "empty-hashes", "eicar.com", "common-ioc-false-positive", "cisco_top1000",
)

# Which MISP attribute types each Kizuna kind corresponds to (a list's ``matching_attributes``).
_ATTRIBUTE_TYPES: Final = {
    IPV4: {"ip-src", "ip-dst", "domain|ip", "ip-src|port", "ip-dst|port", "ip"},
    IPV6: {"ip-src", "ip-dst", "domain|ip", "ip-src|port", "ip-dst|port", "ip"},
    DOMAIN: {"domain", "hostname", "domain|ip"},
    URL: {"url", "uri", "link"},
    EMAIL: {"email", "email-src", "email-dst", "target-email", "email-reply-to"},
    JA3: {"ja3-fingerprint-md5"},
    **{kind: {kind, f"filename|{kind}"} for kind in HASH_KINDS},
}
_TYPE_DEFAULT_KINDS: Final = {
    "cidr": {IPV4, IPV6}, "hostname": {DOMAIN, URL, EMAIL},
    "string": set(_ATTRIBUTE_TYPES), "substring": set(_ATTRIBUTE_TYPES), "regex": set(),
}


class WarninglistError(ValueError):
    """An unknown list name, or a list file that cannot be read."""


def _lists_dir() -> Path:
    # Located without importing the package: its API module pulls in PyMISP, seconds of start-up.
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise WarninglistError("the pymispwarninglists package (the warninglist data) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "misp-warninglists" / "lists"


def available_lists(directory: Path | None = None) -> list[str]:
    """Names of every warninglist in ``directory`` (default: those shipped with ``pymispwarninglists``)."""
    return sorted(p.name for p in (directory or _lists_dir()).iterdir() if (p / "list.json").is_file())


def shipped_list_entries(name: str) -> list[str]:
    """The entries of one list shipped with ``pymispwarninglists``, as written there (other data than flags
    needs them too: the IANA top-level domains, say); WarninglistError when it cannot be read."""
    path = _lists_dir() / name / "list.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WarninglistError(f"warninglist {name!r} cannot be read: {exc}") from exc
    return [str(v).strip() for v in data.get("list", ()) if str(v).strip()]


@dataclass
class _Networks:
    """Sorted address intervals; `overlaps` answers in O(log n) for an address or a block."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # running maximum of the ends, aligned with starts

    @classmethod
    def build(cls, spans: Iterable[tuple[int, int]]) -> _Networks:
        pairs = sorted(spans)
        built = cls()
        highest = -1
        for start, end in pairs:
            highest = max(highest, end)
            built.starts.append(start)
            built.ends.append(highest)
        return built

    def overlaps(self, first: int, last: int) -> bool:
        index = bisect.bisect_right(self.starts, last)  # intervals starting at or before `last`
        return index > 0 and self.ends[index - 1] >= first


@dataclass
class _List:
    name: str
    list_type: str
    kinds: set[str]
    exact: set[str] = field(default_factory=set)
    substrings: tuple[str, ...] = ()
    v4: _Networks = field(default_factory=_Networks)
    v6: _Networks = field(default_factory=_Networks)


def _load_list(name: str, directory: Path) -> _List:
    path = directory / name / "list.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = available_lists(directory)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise WarninglistError(f"no warninglist named {name!r}; {hint}the {len(known)} lists are the directories "
                               f"of {directory}") from None
    except (OSError, ValueError) as exc:
        raise WarninglistError(f"warninglist {name!r} cannot be read: {exc}") from exc
    list_type = str(data.get("type", "string"))
    attributes = set(data.get("matching_attributes") or ())
    kinds = {k for k, types in _ATTRIBUTE_TYPES.items() if types & attributes} if attributes else set()
    kinds = kinds or set(_TYPE_DEFAULT_KINDS.get(list_type, ()))
    if list_type == "cidr":
        kinds &= {IPV4, IPV6}
    entries = [str(v).strip() for v in data.get("list", ()) if str(v).strip()]
    loaded = _List(name, list_type, kinds)
    if list_type == "cidr":
        spans = [span for span in map(_span, entries) if span is not None]  # malformed entries skipped
        loaded.v4 = _Networks.build(span[1:] for span in spans if span[0] == 4)
        loaded.v6 = _Networks.build(span[1:] for span in spans if span[0] == 6)
    elif list_type == "substring":
        loaded.substrings = tuple(e.lower() for e in entries)
    else:
        loaded.exact = {e.lower().rstrip(".") for e in entries}
    return loaded


def _host_of(kind: str, value: str) -> str:
    if kind == URL:
        rest = value.split("://", 1)[-1]
        host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    if kind == EMAIL:
        return value.rpartition("@")[2]
    return value


class Warninglists:
    """A chosen set of warninglists, compiled for fast lookups."""

    def __init__(self, names: Iterable[str] = DEFAULT_LISTS, directory: Path | None = None) -> None:
        folder = directory or _lists_dir()
        self.names = tuple(dict.fromkeys(names))
        self._lists = [_load_list(name, folder) for name in self.names]
        # per kind, only the lists that can hold it: most values meet two or three lists, not all
        self._by_kind = {
            kind: [wl for wl in self._lists if kind in wl.kinds or (kind == URL and wl.list_type == "cidr")]
            for kind in _ATTRIBUTE_TYPES
        }
        # One merged table per list type answers "on no list" (the usual answer) in one lookup.
        cidr = [wl for wl in self._lists if wl.list_type == "cidr"]
        self._any_v4 = _Networks.build([pair for wl in cidr for pair in _spans(wl.v4)])
        self._any_v6 = _Networks.build([pair for wl in cidr for pair in _spans(wl.v6)])
        self._any_exact = set().union(*(wl.exact for wl in self._lists if wl.list_type == "string"))
        self._any_host = set().union(*(wl.exact for wl in self._lists if wl.list_type == "hostname"))
        self._has_substrings = any(wl.list_type == "substring" for wl in self._lists)

    def check(self, kind: str, value: str) -> list[str]:
        """Names of the chosen lists that ``value`` (a canonical IOC of ``kind``) is on."""
        hits: list[str] = []
        lowered = value.lower()
        lists = self._by_kind.get(kind, ())
        if not lists:
            return hits
        span = _span(_host_of(kind, value)) if kind in (IPV4, IPV6, URL) else None
        if not self._has_substrings and lowered not in self._any_exact:
            if span is not None:
                if not (self._any_v4 if span[0] == 4 else self._any_v6).overlaps(span[1], span[2]):
                    return hits
            elif not self._any_host or not _suffix_hit(self._any_host, _host_of(kind, lowered)):
                return hits
        for wl in lists:
            if wl.list_type == "cidr":
                if span is not None:
                    table = wl.v4 if span[0] == 4 else wl.v6
                    if table.overlaps(span[1], span[2]):
                        hits.append(wl.name)
                continue
            if wl.list_type == "hostname":
                if _suffix_hit(wl.exact, _host_of(kind, lowered)):
                    hits.append(wl.name)
            elif wl.list_type == "substring":
                if any(s in lowered for s in wl.substrings):
                    hits.append(wl.name)
            elif lowered in wl.exact:
                hits.append(wl.name)
        return hits


def _spans(table: _Networks) -> list[tuple[int, int]]:
    """The intervals of a table (ends are running maxima, so this over-approximates: a prefilter only)."""
    return list(zip(table.starts, table.ends, strict=True))


def _suffix_hit(entries: set[str], host: str) -> bool:
    while host:
        if host in entries:
            return True
        _, dot, host = host.partition(".")
        if not dot:
            return False
    return False


def _span(value: str) -> tuple[int, int, int] | None:
    """(IP version, first, last address as integers) of an address or block; None if neither."""
    if "/" not in value:  # single addresses dominate the lists: inet_pton is ~10x quicker than ipaddress
        for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
            try:
                number = int.from_bytes(socket.inet_pton(family, value), "big")
            except OSError:
                continue
            return version, number, number
        return None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


@functools.lru_cache(maxsize=8)
def load_warninglists(names: tuple[str, ...] = DEFAULT_LISTS) -> Warninglists:
    """The compiled lists for a selection, built once per process (loading the defaults takes ~0.5 s)."""
    return Warninglists(names)


def flagged_lists(indicator: Mapping[str, Any]) -> list[str]:
    """The warninglists an indicator was flagged with at import (empty when it is not flagged)."""
    value = indicator.get(WARNINGLIST_PROPERTY)
    return [str(v) for v in value] if isinstance(value, list) else []
