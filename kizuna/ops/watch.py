"""The watchlist as a matcher: does a STIX object refer to a protected asset, and by which rule?

Rules, strongest first: ``exact`` (the value is the asset), ``containment`` (a subdomain of a
protected domain, an address inside a protected range, a URL on a protected host), ``lookalike``
(a domain, or a parent of it, in the dnstwist watch set) and ``relationship`` (the object points
at an asset, or at an object that already matched one). Lookups are set and dict probes, so the
cost per object does not grow with the number of assets (bench/bench_ops.py measures it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from kizuna.stix.pattern_scan import unescape

#: A comparison on a value the watchlist knows, inside a STIX pattern: type, operator, quoted value. The
#: quoted value is runs of plain characters between escapes (one character class repeated, not an
#: alternation tried at every character: about a third of the time per indicator).
_COMPARISON = re.compile(
    r"(domain-name|url|ipv4-addr|ipv6-addr|email-addr):value\s*(=|ISSUBSET|ISSUPERSET|LIKE|MATCHES)\s*"
    r"'([^'\\]*(?:\\.[^'\\]*)*)'")
#: Cyber-observables whose ``value`` the watchlist can judge.
VALUE_TYPES = ("domain-name", "url", "ipv4-addr", "ipv6-addr", "email-addr")


@dataclass(frozen=True, slots=True)
class Hit:
    asset: str  # the protected value or name
    asset_id: str
    rule: str  # exact | containment | lookalike | relationship
    value: str  # what in the object matched
    fuzzer: str | None = None  # for lookalikes: which permutation produced it


class Watchlist:
    def __init__(self, assets: Iterable[dict[str, Any]], lookalikes: dict[str, tuple[str, str]]) -> None:
        self.domains: dict[str, str] = {}  # domain -> asset id
        self.urls: dict[str, str] = {}
        self.networks: dict[tuple[int, int], dict[int, tuple[str, str]]] = {}  # (version, prefix) -> {net: asset}
        self.names: dict[str, str] = {}  # asset id -> shown value
        for asset in assets:
            value, asset_id = str(asset.get("value") or asset.get("name")), asset["id"]
            self.names[asset_id] = value
            kind = asset["type"]
            if kind == "domain-name":
                self.domains[value] = asset_id
            elif kind == "url":
                self.urls[value] = asset_id
            elif kind in ("ipv4-addr", "ipv6-addr"):
                net = ipaddress.ip_network(value, strict=False)
                self.networks.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = (value, asset_id)
        self.lookalikes = {k: v for k, v in lookalikes.items() if k not in self.domains}
        self._domain_ids = {name: asset_id for asset_id, name in self.names.items()}
        # The last two labels of every watched name: a name whose own last two are not among them can
        # match no parent (each parent probed keeps them), so most names cost one set probe.
        self._tails = {_tail(name) for name in (*self.domains, *self.lookalikes)}
        self._quiet: set[str] = set()  # last two labels as written, known to be no watched tail (see `domain`)
        #: The last two labels of every lookalike: what the log watch's pre-test in the fast path reads.
        self.lookalike_tails = frozenset(_tail(name) for name in self.lookalikes)

    def __len__(self) -> int:
        return len(self.names)

    # -- local logs: the lookalike watch set ----------------------------------------------------
    def lookalike(self, text: str) -> Hit | None:
        """A domain seen in local logs judged against the lookalike watch set alone: the protected
        names themselves (and their subdomains) are the operation's own traffic there, not alerts."""
        name = text.strip().lower().rstrip(".")
        if _tail(name) not in self.lookalike_tails:
            return None
        parent = name
        while "." in parent:
            if parent in self.lookalikes:
                protected, fuzzer = self.lookalikes[parent]
                return Hit(protected, self._domain_ids.get(protected, ""), "lookalike", name, fuzzer)
            parent = parent[parent.find(".") + 1:]
        return None

    # -- values ------------------------------------------------------------------------------
    def domain(self, text: str) -> Hit | None:
        # The last two labels as written: when they were found plain and unwatched before, so is this name
        # (most names share a few registered domains), without normalising it.
        written = text[text.rfind(".", 0, text.rfind(".")) + 1:]
        if written in self._quiet:
            return None
        name = text.strip().lower().rstrip(".")
        if _tail(name) not in self._tails:
            if len(self._quiet) < _QUIET_KEPT and written.isascii() and written[-1:] not in _UNTRIMMED \
                    and written[:1] not in _UNTRIMMED:
                self._quiet.add(written)  # lower-cased alone, these are the normal form's last two labels
            return None
        parents = []  # the name and each parent that still has a dot, by slicing (no joins)
        parent = name
        while (dot := parent.find(".")) >= 0:
            parents.append(parent)
            parent = parent[dot + 1:]
        for i, parent in enumerate(parents):
            if parent in self.domains:
                return Hit(parent, self.domains[parent], "exact" if i == 0 else "containment", name)
        for parent in parents:
            if parent in self.lookalikes:
                protected, fuzzer = self.lookalikes[parent]
                return Hit(protected, self._domain_ids.get(protected, ""), "lookalike", name, fuzzer)
        return None

    def address(self, text: str) -> Hit | None:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            return None
        for (version, prefix), table in self.networks.items():
            if version != net.version or prefix > net.prefixlen:
                continue
            key = int(net.network_address) >> (net.max_prefixlen - prefix) << (net.max_prefixlen - prefix)
            if key in table:
                value, asset_id = table[key]
                exact = prefix == net.prefixlen
                return Hit(value, asset_id, "exact" if exact else "containment", str(net) if not exact else text)
        return None

    def url(self, text: str) -> Hit | None:
        value = text.strip()
        if value in self.urls:
            return Hit(value, self.urls[value], "exact", value)
        try:
            host = urlsplit(value).hostname
        except ValueError:  # an authority urlsplit cannot read (a lone '[' or ']'): no host to match
            return None
        if host is None:
            return None
        hit = self.address(host) or self.domain(host)
        if hit is None:
            return None
        # A URL is never the protected host itself: on it, the URL is contained in it (the rule named above),
        # and what matched is the URL as written, not its host.
        return replace(hit, rule="containment" if hit.rule == "exact" else hit.rule, value=value)

    def value(self, stix_type: str, text: str) -> Hit | None:
        if stix_type == "domain-name":
            return self.domain(text)
        if stix_type == "url":
            return self.url(text)
        if stix_type in ("ipv4-addr", "ipv6-addr"):
            return self.address(text)
        if stix_type == "email-addr" and "@" in text:
            return self.domain(text.rsplit("@", 1)[1])
        return None

    # -- objects -----------------------------------------------------------------------------
    def hits(self, obj: dict[str, Any], matched: dict[str, Hit] | None = None) -> list[Hit]:
        """Every way the object refers to a protected asset. ``matched`` (object id -> hit) lets a
        sighting or report of an object that already matched inherit it as a relationship. (A list, not a
        generator: this runs on every object an operation receives, and nearly all find nothing.)"""
        found: list[Hit] = []
        kind = obj.get("type", "")
        hit: Hit | None
        if kind == "indicator":
            pattern = obj.get("pattern")
            if type(pattern) is str:
                for stix_type, _, quoted in _COMPARISON.findall(pattern):
                    quoted = unescape(quoted)
                    hit = self.domain(quoted) if stix_type == "domain-name" else self.value(stix_type, quoted)
                    if hit is not None:
                        found.append(hit)
        elif kind in VALUE_TYPES and "value" in obj:
            hit = self.value(kind, str(obj["value"]))
            if hit is not None:
                found.append(hit)
        elif kind == "observed-data" and isinstance(obj.get("objects"), dict):  # STIX 2.0-style embedded
            for sco in obj["objects"].values():
                if isinstance(sco, dict) and "value" in sco:
                    hit = self.value(str(sco.get("type")), str(sco["value"]))
                    if hit is not None:
                        found.append(hit)
        for ref in refs_of(obj):
            if ref in self.names:
                found.append(Hit(self.names[ref], ref, "relationship", ref))
            elif matched and ref in matched:
                via = matched[ref]
                # Observed data is the sighting of the value itself: it keeps the value's rule.
                rule = via.rule if kind == "observed-data" else "relationship"
                found.append(Hit(via.asset, via.asset_id, rule, via.value if kind == "observed-data" else ref,
                                 via.fuzzer))
        return found


_QUIET_KEPT = 100_000
#: What `str.strip()` removes at an ASCII name's ends, and the final dot: last two labels as written that
#: are ASCII and neither end nor start in one of these are, lower-cased, those of the normal form.
_UNTRIMMED = frozenset(" .\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")


def _tail(name: str) -> str:
    """The last two labels of a domain name (the whole name when it has fewer)."""
    return name[name.rfind(".", 0, max(name.rfind("."), 0)) + 1:]


#: Which keys of an object are references, per set of keys: objects of one kind from one producer share
#: their keys, so each object costs a tuple and a dict probe instead of a test of every key.
_REF_KEYS: dict[tuple[str, ...], tuple[tuple[str, bool], ...]] = {}
_REF_KEYS_KEPT = 4096


def refs_of(obj: dict[str, Any]) -> list[str]:
    """The ids an object points at (``*_ref`` and ``*_refs``), other than its producer and markings."""
    keys = tuple(obj)
    found = _REF_KEYS.get(keys)
    if found is None:
        found = tuple((key, key.endswith("_refs")) for key in keys
                      if (key.endswith("_ref") and key != "created_by_ref")
                      or (key.endswith("_refs") and key != "object_marking_refs"))
        if len(_REF_KEYS) < _REF_KEYS_KEPT:
            _REF_KEYS[keys] = found
    refs: list[str] = []
    for key, many in found:
        value = obj[key]
        if many:
            if isinstance(value, list):
                refs.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, str):
            refs.append(value)
    return refs
