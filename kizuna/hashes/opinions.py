"""A partner's verdict on a hash signal, recorded as a STIX ``opinion`` in the signal's bank.

One path for the CLI (`kizuna hashes opinion`), the HTTP API (`POST /{api_root}/hashes/opinions`) and the
console's hash page: the signal is read through the caller's viewer (the one visibility check), so a
signal the caller may not see is "no such signal" exactly as one that does not exist; the opinion is
written through `Node.add_objects` with the caller's write right on the bank, its status and its audit
record, under the signal's own markings so federation carries it back to the producer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from kizuna.core.errors import BadRequest, Forbidden, NotFound
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.messages import N_, Message
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.hashes.signals import VERDICTS, make_opinion, read_signal
from kizuna.store.base import Collection

#: The longest comment kept with a verdict (a sentence or two, not a report).
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Recorded:
    """An opinion as stored, with the TAXII status of its write."""

    opinion: dict[str, Any]
    status: dict[str, Any]


def visible_signal(node: Node, principal: Principal, bank: Collection, signal_id: str) -> dict[str, Any] | None:
    """The newest version of the hash signal ``signal_id`` in ``bank`` that ``principal`` may see, or None
    (absent, hidden, or not a hash signal: the caller cannot tell which)."""
    viewer = node.viewer_for(principal, bank)
    page = node.read(viewer, Endpoint.OBJECTS, Filters(ids=(signal_id,)))
    found = [orjson.loads(body) for _row, body in page.items]
    return found[-1] if found and read_signal(found[-1]) is not None else None


def record_opinion(node: Node, principal: Principal, bank: Collection, signal_id: str, verdict: str,
                   comment: str | None = None) -> Recorded:
    """Store ``principal``'s verdict on a signal of ``bank`` (which it must read and write)."""
    if verdict not in VERDICTS:
        raise BadRequest(Message(N_("verdict %(verdict)r is not one of %(verdicts)s"), verdict=verdict[:40],
                                 verdicts=", ".join(VERDICTS)))
    if comment is not None and len(comment) > MAX_COMMENT:
        raise BadRequest(Message(N_("the comment is longer than %(most)s characters"), most=MAX_COMMENT))
    signal = visible_signal(node, principal, bank, signal_id)
    if signal is None:
        raise NotFound("no such hash signal in this bank")
    if not principal.can_write(bank):
        raise Forbidden("this token may not write to this bank")
    opinion = make_opinion(signal, verdict, author=node.acting_identity(principal) or None, comment=comment or None)
    report = node.add_objects(principal, bank, [opinion])
    if report.failures:  # an opinion built here that ingest refuses is the node's fault, said plainly
        raise BadRequest(str(report.failures[0].get("message", "the opinion was refused")))
    return Recorded(opinion, report.to_taxii())


def opinion_of(node: Node, principal: Principal, bank: Collection, signal_id: str, verdict: str,
               comment: str | None = None) -> dict[str, Any]:
    """`record_opinion`'s stored opinion alone (what the console's hash page redirects to)."""
    return record_opinion(node, principal, bank, signal_id, verdict, comment).opinion
