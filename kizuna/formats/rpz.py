"""DNS Response Policy Zones: the domains and IP blocks of a feed as a zone BIND, Unbound or
PowerDNS load as a firewall.

Each domain gets a record for itself and one for its subdomains (``*.``); each address or block
becomes an ``rpz-ip`` trigger, which rewrites answers that contain it. URLs, e-mail addresses,
hashes and JA3 fingerprints have no place in DNS and are counted in the report's warnings. Names
are IDNA-encoded and every value has passed `iocs.canonical`, so no partner-supplied text can add
records of its own.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final

from kizuna.core.feeds import zone_name_problem
from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.feeds import DEFAULT_OPTIONS, PIECE_LINES, FeedOptions, feed_timestamp, select_terms
from kizuna.formats.iocs import DOMAIN, IPV4, IPV6, to_ascii_domain
from kizuna.stix.timestamps import parse_timestamp

#: Policy actions and the record data that asks a resolver for them (the RPZ convention).
ACTIONS: Final = {"nxdomain": "CNAME .", "nodata": "CNAME *.", "drop": "CNAME rpz-drop.",
                  "passthru": "CNAME rpz-passthru."}


def rpz_ip_name(value: str) -> str:
    """The ``rpz-ip`` owner label sequence of an address or CIDR block (``32.4.3.2.1.rpz-ip``)."""
    if "/" not in value and ":" not in value:  # a canonical IPv4 address, the bulk of any feed
        a, b, c, d = value.split(".")
        return f"32.{d}.{c}.{b}.{a}.rpz-ip"
    network = ipaddress.ip_network(value, strict=True)
    prefix = network.prefixlen
    if network.version == 4:
        return ".".join([str(prefix), *reversed(str(network.network_address).split("."))]) + ".rpz-ip"
    text = network.network_address.compressed
    if "::" in text:
        left, right = text.split("::")
        words = [*reversed(right.split(":") if right else []), "zz", *reversed(left.split(":") if left else [])]
    else:
        words = list(reversed(text.split(":")))
    return ".".join([str(prefix), *words]) + ".rpz-ip"


def write_rpz(
    objects: Iterable[dict[str, Any] | bytes | str],
    origin: str,
    *,
    options: FeedOptions = DEFAULT_OPTIONS,
    report: ConversionReport | None = None,
    action: str = "nxdomain",
    ttl: int = 300,
    nameserver: str = "localhost.",
    hostmaster: str = "hostmaster.localhost.",
    subdomains: bool = True,
) -> Iterator[str]:
    """The text of an RPZ zone file for ``origin`` (e.g. ``rpz.example.org``), SOA and NS first, in pieces of
    whole lines: the four head lines one by one, the records some thousand lines a piece (`PIECE_LINES`).

    ``action``: nxdomain (default), nodata, drop or passthru. ``subdomains`` adds ``*.domain`` for
    each domain. The SOA serial is the feed time in seconds since the epoch, so it grows with time.
    """
    record = ACTIONS.get(action)
    if record is None:
        raise FormatError(f"unknown RPZ action {action!r} (one of {', '.join(ACTIONS)})")
    problem = zone_name_problem(origin)
    if problem is not None:
        raise FormatError(problem)
    zone = origin.rstrip(".").lower() + "."
    serial = parse_timestamp(feed_timestamp(options)) // 1_000_000 % 2**32
    yield f"$ORIGIN {zone}\n"
    yield f"$TTL {ttl}\n"
    yield f"@ IN SOA {nameserver} {hostmaster} {serial} 3600 600 604800 {ttl}\n"
    yield f"@ IN NS {nameserver}\n"
    written: set[str] = set()
    unsupported: Counter[str] = Counter()
    room = 254 - len(zone) - 2  # owner names must fit in 255 octets with the origin and a "*." label
    tail = f" {record}\n"
    out: list[str] = []
    add = out.append
    for kind, value in select_terms(objects, options, report, (DOMAIN, IPV4, IPV6), skip_unparsed=False):
        if kind == DOMAIN:
            # keyed by the owner name, so an IDN given in Unicode and in A-labels is one record
            name = value if value.isascii() else to_ascii_domain(value)
            if name in written:  # one entry per name keeps the set at a third of one per owner name
                continue
            if len(name) > room:
                unsupported["domain too long for the zone"] += 1
                continue
            written.add(name)
            add(name + tail)
            if subdomains:
                add("*." + name + tail)
        elif value not in written:
            written.add(value)
            add(rpz_ip_name(value) + tail)
        if len(out) >= PIECE_LINES:
            yield "".join(out)
            out.clear()
    if out:
        yield "".join(out)
    if report is not None:
        for what, count in sorted(unsupported.items()):
            report.warnings.append(f"{count} {what} value(s) have no RPZ form and were left out")
