"""Lookalike domains of a protected domain, from dnstwist's permutation engine (no DNS, no network).

dnstwist (https://github.com/elceef/dnstwist) generates typosquats, homoglyphs, bitsquats, TLD swaps
and the like; Kizuna keeps only the names and which fuzzer made each, as the operation's watch set.
Resolution is deliberately not done here: an operation must work in a room without internet.

The set is bounded (`MAX_LOOKALIKES` per domain, docs/operations-runbook.md). Every fuzzer but the
homoglyph one grows with the label's length only (a 40-character label gets about 1,100 such names),
and their names are kept first. dnstwist's homoglyphs swap one glyph and then a second one in every
result, which grows with the square of the length (about 117,000 names, half a minute or more and
hundreds of MB, for a 40-character label): one-glyph swaps come next, and two-glyph swaps fill what is
left of the bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Most lookalikes kept for one domain: what a short label (games2027.example: 1,765) gets whole.
MAX_LOOKALIKES = 2_000
_HOMOGLYPH = "homoglyph"
#: dnstwist's fuzzers other than the homoglyph one (``generate`` runs all of them when given none).
_OTHER_FUZZERS = ["*original", "addition", "bitsquatting", "cyrillic", "hyphenation", "insertion", "omission",
                  "plural", "repetition", "replacement", "subdomain", "transposition", "vowel-swap", "dictionary",
                  "tld-swap", "various"]


def lookalikes_of(domain: str) -> dict[str, str]:
    """Candidate lookalike -> the dnstwist fuzzer that produced it (the domain itself left out), at most
    `MAX_LOOKALIKES` of them."""
    import dnstwist  # imported here: every `kizuna` command loads the CLI, few of them need dnstwist

    class BoundedFuzzer(dnstwist.Fuzzer):
        budget = MAX_LOOKALIKES

        def _homoglyph(self) -> list[str]:
            glyphs = _merged(self.glyphs_ascii, self.glyphs_idn_by_tld.get(self.tld, self.glyphs_unicode))
            once = sorted(set(_swaps(self.domain, glyphs)))[:self.budget]
            kept = dict.fromkeys(once)
            for swapped in once:  # in a stable order, so that the same domain always gets the same set
                if len(kept) >= self.budget:
                    break
                for twice in _swaps(swapped, glyphs):
                    kept.setdefault(twice)
                    if len(kept) >= self.budget:
                        break
            return list(kept)

    fuzzer = BoundedFuzzer(domain)
    found: dict[str, str] = {}
    fuzzer.generate(_OTHER_FUZZERS)
    _collect(fuzzer.domains, domain, found)
    fuzzer.budget = max(0, MAX_LOOKALIKES - len(found))
    if fuzzer.budget:
        fuzzer.generate([_HOMOGLYPH])
        _collect(fuzzer.domains, domain, found)
    return dict(sorted(found.items())[:MAX_LOOKALIKES]) if len(found) > MAX_LOOKALIKES else found


def _collect(candidates: Any, domain: str, found: dict[str, str]) -> None:
    for candidate in sorted(candidates, key=lambda c: str(c["domain"])):
        name = str(candidate["domain"]).lower()
        if candidate["fuzzer"] != "*original" and name and name != domain:
            found.setdefault(name, str(candidate["fuzzer"]))


def _merged(ascii_glyphs: dict[str, Any], idn_glyphs: dict[str, Any]) -> dict[str, set[str]]:
    return {key: set(ascii_glyphs.get(key, [])) | set(idn_glyphs.get(key, [])) for key in {*ascii_glyphs, *idn_glyphs}}


def _swaps(label: str, glyphs: dict[str, set[str]]) -> Iterator[str]:
    """Every one-glyph swap of ``label``: one character, or one of two neighbours or both (``rn`` for ``m``), by a
    glyph that looks like it (the single pass of dnstwist's homoglyph fuzzer)."""
    for i, char in enumerate(label):
        for glyph in sorted(glyphs.get(char, ())):
            yield label[:i] + glyph + label[i + 1:]
    for i in range(len(label) - 1):
        window = label[i:i + 2]
        for part in sorted({window[0], window[1], window}):
            for glyph in sorted(glyphs.get(part, ())):
                yield label[:i] + window.replace(part, glyph) + label[i + 2:]
