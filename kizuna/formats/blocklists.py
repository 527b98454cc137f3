"""Plain-text blocklists: one IOC a line, one list per kind, for firewalls, proxies and DNS filters.

Values are read one at a time from the caller's view (`feeds.select` applies the feed's TLP
ceiling, confidence floor, expiry and warninglist flags), so a million indicators never sit in memory
as objects; only the set of values already written is kept, to write each value once.

Each value is written as the devices reading the list compare it (`iocs.wire_form`): a domain, an e-mail
address's domain and a URL's host in IDNA A-labels, the rest of a URL percent-encoded. A DNS filter holding
``bücher.de`` would never match the ``xn--bcher-kva.de`` its resolver sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.feeds import (
    DEFAULT_OPTIONS,
    PIECE_LINES,
    FeedOptions,
    feed_timestamp,
    on_the_wire,
    select_terms,
)
from kizuna.formats.iocs import HASH_KINDS, IPV4, IPV6, KINDS

#: The lists `write_blocklist` can write, and the IOC kinds each one holds.
BLOCKLIST_KINDS: Final = {
    "ip": (IPV4, IPV6),
    "hash": HASH_KINDS,
    **{kind: (kind,) for kind in KINDS},
}


def write_blocklist(
    objects: Iterable[dict[str, Any] | bytes | str],
    kind: str,
    *,
    options: FeedOptions = DEFAULT_OPTIONS,
    report: ConversionReport | None = None,
    header: bool = False,
) -> Iterator[str]:
    """The text of a blocklist of ``kind``, in pieces of whole lines (the header line on its own, the values
    some thousand lines a piece, `PIECE_LINES`): ``ip`` (addresses and CIDR blocks, v4 and v6),
    ``ipv4``, ``ipv6``, ``domain``, ``url``, ``email``, ``hash`` (all four), ``md5``, ``sha1``,
    ``sha256``, ``sha512`` or ``ja3``. ``header`` adds ``#`` comment lines naming the feed and its time.
    """
    wanted = BLOCKLIST_KINDS.get(kind)
    if wanted is None:
        raise FormatError(f"unknown blocklist kind {kind!r} (one of {', '.join(BLOCKLIST_KINDS)})")
    if header:
        yield f"# Kizuna {kind} blocklist as of {feed_timestamp(options)}\n"
    written: set[str] = set()
    out: list[str] = []
    add = out.append
    for kind, value in select_terms(objects, options, report, wanted):
        if not value.isascii():  # an IDN or a URL with non-ASCII text: written as devices compare it
            wire = on_the_wire(kind, value, "?", report)
            if wire is None:
                continue
            value = wire
        if value not in written:
            written.add(value)
            add(value + "\n")
            if len(out) >= PIECE_LINES:
                yield "".join(out)
                out.clear()
    if out:
        yield "".join(out)
