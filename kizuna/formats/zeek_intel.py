"""Zeek Intel framework files: the feed's IOCs as the tab-separated table ``Intel::read_files`` loads.

Types: addresses ``Intel::ADDR``, CIDR blocks ``Intel::SUBNET``, domains ``Intel::DOMAIN``, URLs
``Intel::URL`` (without the scheme, as Zeek sees them in HTTP), e-mail addresses ``Intel::EMAIL``
and file hashes ``Intel::FILE_HASH``. Zeek has no intel type for JA3, so fingerprints are counted as
left out. ``meta.desc`` names the indicator, so a Zeek hit leads back to the STIX object.

Zeek matches what it reads off the wire: DNS queries, TLS server names and Host headers carry IDNA A-labels,
and a request's path carries non-ASCII text percent-encoded. Each indicator is written so (`iocs.wire_form`),
or an IDN would never be seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final

from kizuna.formats.base import ConversionReport
from kizuna.formats.feeds import DEFAULT_OPTIONS, FeedOptions, on_the_wire, select
from kizuna.formats.iocs import DOMAIN, EMAIL, HASH_KINDS, IPV4, IPV6, URL

HEADER: Final = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n"


def _field(text: str) -> str:
    """A table cell: no tabs or line breaks, and never Zeek's markers for unset or empty fields."""
    cleaned = " ".join(text.split())
    return cleaned if cleaned and cleaned not in ("-", "(empty)") else "-"


def _intel(kind: str, value: str) -> tuple[str, str] | None:
    if kind == IPV4 or kind == IPV6:
        return value, "Intel::SUBNET" if "/" in value else "Intel::ADDR"
    if kind == DOMAIN:
        return value, "Intel::DOMAIN"
    if kind == URL:
        return value.split("://", 1)[1], "Intel::URL"
    if kind == EMAIL:
        return value, "Intel::EMAIL"
    if kind in HASH_KINDS:
        return value, "Intel::FILE_HASH"
    return None


def write_zeek_intel(
    objects: Iterable[dict[str, Any] | bytes | str],
    *,
    options: FeedOptions = DEFAULT_OPTIONS,
    report: ConversionReport | None = None,
    source: str = "kizuna",
    url: str | None = None,
) -> Iterator[str]:
    """Lines of a Zeek Intel file: the ``#fields`` header, then one row per IOC.

    ``source`` fills ``meta.source``; ``url`` (e.g. the node's object URL prefix) fills ``meta.url``
    with ``url + indicator id``.
    """
    yield HEADER
    meta_source = _field(source)
    written: set[tuple[str, str]] = set()
    unsupported: Counter[str] = Counter()
    for selected in select(objects, options, report):
        ident = str(selected.indicator.get("id", ""))
        name = selected.indicator.get("name")
        desc = _field(f"{name} ({ident})" if isinstance(name, str) and name else ident)
        meta_url = _field(url + ident) if url else "-"
        for kind, value in selected.terms:
            if not value.isascii():  # Zeek sees a name in A-labels and a URL's path percent-encoded, as sent
                wire = on_the_wire(kind, value, ident, report)
                if wire is None:
                    continue
                value = wire
            intel = _intel(kind, value)
            if intel is None:
                unsupported[kind] += 1
                continue
            if intel in written or any(c in intel[0] for c in "\t\r\n"):
                continue
            written.add(intel)
            yield f"{intel[0]}\t{intel[1]}\t{meta_source}\t{desc}\t{meta_url}\n"
    if report is not None:
        for kind, count in sorted(unsupported.items()):
            report.warnings.append(f"{count} {kind} value(s) have no Zeek Intel type and were left out")
