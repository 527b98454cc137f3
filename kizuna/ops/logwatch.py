"""An operation's lookalike watch asked about local log values, in the pass that matches the indicators.

In local DNS, proxy and TLS logs the protected names and ranges are the operation's own traffic; what
is worth an alert is a lookalike of a protected domain (the dnstwist watch set), so logs are judged on
their domain names (every shipped mapping gives the host of a URL as one) against that set.

`kizuna match --operation OP` and `kizuna ops scan-logs OP` hand a `LogWatch` to the detection fast
path (it satisfies `kizuna.detect.fast.ValueWatch` by shape; ops does not import detect). The fast
path reads each line's domain names with the watchlist's pre-test, so a line that cannot hit is
settled without being built; the values of the lines that are built come to `see`, which judges each
distinct value once and counts the hits with their first and last time.
"""

from __future__ import annotations

from dataclasses import dataclass

from kizuna.ops.watch import Hit, Watchlist

#: Distinct values judged a miss, remembered so a busy log's repeats cost one set probe; past this many
#: the rest are judged again (a bounded memory for a log of millions of distinct names).
_MISSES_KEPT = 200_000


@dataclass
class LogHit:
    stix_type: str
    value: str
    hit: Hit
    count: int = 0
    first: float | None = None
    last: float | None = None


class LogWatch:
    def __init__(self, watch: Watchlist) -> None:
        self.watch = watch
        self.hits: dict[tuple[str, str], LogHit] = {}
        self._misses: set[tuple[str, str]] = set()

    def domain_tails(self) -> frozenset[str]:
        return self.watch.lookalike_tails

    def see(self, stix_type: str, value: str, when: float | None) -> None:
        """One value of a log line at `when` (epoch seconds, if the line has a time)."""
        key = (stix_type, value.lower() if stix_type == "domain-name" else value)
        found = self.hits.get(key)
        if found is None:
            if stix_type != "domain-name" or key in self._misses:
                return
            hit = self.watch.lookalike(key[1])
            if hit is None:
                if len(self._misses) < _MISSES_KEPT:
                    self._misses.add(key)
                return
            found = self.hits[key] = LogHit(stix_type, key[1], hit)
        found.count += 1
        if when is not None:
            found.first = when if found.first is None else min(found.first, when)
            found.last = when if found.last is None else max(found.last, when)

    def found(self) -> list[LogHit]:
        """The hits, most frequent first."""
        return sorted(self.hits.values(), key=lambda h: (-h.count, h.value))
