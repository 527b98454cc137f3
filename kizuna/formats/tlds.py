"""Which top-level domains exist, so that an IOC list's file names (report.pdf, update.exe) are not taken for domains.

The delegated TLDs are the IANA list the MISP project keeps as its ``tlds`` warninglist, which
``pymispwarninglists`` ships and Kizuna already reads for flagging: one well-kept source, updated with
that package. A handful of names outside the root zone are accepted beside it, as real intelligence
names them: the special-use ``onion`` (RFC 7686), the names reserved for tests and documentation
(RFC 2606: ``test``, ``example``, ``invalid``, ``localhost``) and the IDN test TLDs IANA delegated for
that same purpose (``テスト`` and its ten siblings).
"""

from __future__ import annotations

import functools
from typing import Final

from kizuna.formats.warninglists import WarninglistError, shipped_list_entries

#: Names outside the IANA list that are still names (see the module's docstring), as DNS carries them.
_RESERVED: Final = frozenset({
    "onion", "test", "example", "invalid", "localhost",
    "xn--0zwm56d", "xn--11b5bs3a9aj6g", "xn--80akhbyknj4f", "xn--9t4b11yi5a", "xn--deba0ad", "xn--g6w251d",
    "xn--hgbk6aj7f53bba", "xn--hlcj6aya9esc7a", "xn--jxalpdlp", "xn--kgbechtv", "xn--zckzah",
})


@functools.cache
def _known() -> frozenset[str]:
    """The TLDs, lower-case, IDN ones as A-labels (xn--…), read once per process."""
    try:
        listed = shipped_list_entries("tlds")
    except WarninglistError:
        # Without the list no name can be told from a file name: every TLD of the right shape passes, as before.
        return frozenset()
    return frozenset(name.lower().rstrip(".") for name in listed) | _RESERVED


def unknown_top_level_domain(domain: str) -> str | None:
    """The last label of a canonical domain (`iocs.canonical`) when it is no top-level domain, else None."""
    known = _known()
    last = domain.rpartition(".")[2]
    if not known:
        return None
    ascii_last = last if last.isascii() else last.encode("idna").decode("ascii")
    return None if ascii_last in known else last
