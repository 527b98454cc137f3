"""The one-IOC STIX pattern: ``[ipv4-addr:value = '198.51.100.7']`` and its kin, by IOC kind.

What Kizuna and most producers write for an indicator of one value. The table of paths lives here,
below the formats room, so that the store can note at ingest which IOC an indicator names
(store/feed_facts.py) by the same rule the feed writers read it (formats/iocs.py, formats/feeds.py).
"""

from __future__ import annotations

import re
from typing import Final

#: The pattern path of each IOC kind (the kind names are those of formats/iocs.py).
PATTERN_PATHS: Final = {
    "ipv4": "ipv4-addr:value",
    "ipv6": "ipv6-addr:value",
    "domain": "domain-name:value",
    "url": "url:value",
    "email": "email-addr:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
    "sha512": "file:hashes.'SHA-512'",
    # STIX 2.1 has no JA3 property; Kizuna writes it as a custom network-traffic extension (decisions.md).
    "ja3": "network-traffic:extensions.'x-ja3'.hash",
}
#: A STIX pattern string literal, quotes included (``\\'`` and ``\\\\`` escapes). Written as runs of plain
#: characters between escapes rather than one alternation per character: the same strings, matched in a quarter
#: of the time (a SHA-256 literal 0.6 against 2.5 µs), and every indicator's pattern goes through it at ingest.
QUOTED: Final = r"'[^'\\]*(?:\\['\\][^'\\]*)*'"
KIND_BY_PATH: Final = {path: kind for kind, path in PATTERN_PATHS.items()}
#: One comparison on a path of the table, exactly as written by Kizuna: group 1 the path, group 2 the literal.
SINGLE_TERM: Final = re.compile(r"\[(" + "|".join(re.escape(p) for p in PATTERN_PATHS.values()) + rf") = ({QUOTED})\]")
