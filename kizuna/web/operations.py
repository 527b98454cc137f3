"""Operations (issue 14): the mass-event operations the signed-in token takes part in, and one
operation's board: partners, collections, alerts on protected assets, incidents, and the newest shift
report.

The board is built by ``kizuna/ops/board.py``, a sibling this room may not import: ``kizuna/app.py``
hands its two functions over as ``app.state.operations``. They read as the signed-in token, through the
one visibility check, so a partner sees exactly what its TAXII reads would show; an operation whose
collections the token may not read is the same 404 page as one that does not exist. Partner token
states are the node's configuration: only operators see them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from kizuna.core.errors import NotFound
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.core.vocab import DETERMINATION_NAMES, N_, RULE_NAMES, STATUS_NAMES
from kizuna.web.page import Visit


@dataclass(frozen=True)
class OperationsSource:
    """What kizuna/ops gives the console: the operations a token may see, and one operation's board."""

    visible: Callable[[Node, Principal], list[Any]]
    board: Callable[[Node, Principal, str], Any | None]


#: How the roles and token states read on the page (translated); the rest is core/vocab.py's.
ROLE_NAMES = {"intel": N_("Intel"), "incidents": N_("Incidents"), "watchlist": N_("Watchlist")}
TOKEN_STATES = {"active": N_("active"), "expired": N_("expired"), "revoked": N_("revoked")}


def _source(visit: Visit) -> OperationsSource:
    source: OperationsSource = visit.request.app.state.operations
    return source


def _names(visit: Visit, table: dict[str, str]) -> dict[str, str]:
    return {key: visit.gettext(label) for key, label in table.items()}


def operations_page(visit: Visit) -> Response:
    found = _source(visit).visible(visit.node, visit.principal)
    return visit.render("operations.html", operations=found, states=_names(visit, STATUS_NAMES))


def operation_page(visit: Visit) -> Response:
    board = _source(visit).board(visit.node, visit.principal, visit.request.path_params["slug"])
    if board is None:
        raise NotFound("no such operation")
    return visit.render("operation.html", board=board, op=board.summary, rules=_names(visit, RULE_NAMES),
                        states=_names(visit, STATUS_NAMES), roles=_names(visit, ROLE_NAMES),
                        token_states=_names(visit, TOKEN_STATES), determinations=_names(visit, DETERMINATION_NAMES))
