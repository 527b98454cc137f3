"""Lookalike domains of a protected domain, from dnstwist's permutation engine (no DNS, no network).

dnstwist (https://github.com/elceef/dnstwist) generates typosquats, homoglyphs, bitsquats, TLD swaps
and the like; Kizuna keeps only the names and which fuzzer made each, as the operation's watch set.
Resolution is deliberately not done here: an operation must work in a room without internet.
"""

from __future__ import annotations


def lookalikes_of(domain: str) -> dict[str, str]:
    """Candidate lookalike -> the dnstwist fuzzer that produced it (the domain itself left out)."""
    import dnstwist  # imported here: every `kizuna` command loads the CLI, few of them need dnstwist

    fuzzer = dnstwist.Fuzzer(domain)
    fuzzer.generate()
    found: dict[str, str] = {}
    for candidate in fuzzer.domains:
        name = str(candidate["domain"]).lower()
        if candidate["fuzzer"] != "*original" and name != domain:
            found.setdefault(name, str(candidate["fuzzer"]))
    return found
