"""The federation room's failure a command reports in one line, importable without the room itself.

`kizuna.cli.errors` renders every command's failures, so what it imports every command pays for: the
partner state module and its imports cost about 13 ms of each start of a command that never syncs.
"""

from __future__ import annotations


class StateError(Exception):
    """A partner or cursor state the node cannot act on (an unknown partner, a partner that exists)."""
