"""An operation's watch as the log commands use it: `kizuna match --operation` and `kizuna ops scan-logs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kizuna.core.node import Node
from kizuna.ops.alerts import watchlist_of
from kizuna.ops.logwatch import LogWatch
from kizuna.ops.records import Operation, find
from kizuna.ops.sightings import store_log_hits


@dataclass
class OperationWatch:
    node: Node
    operation: Operation
    log: LogWatch

    def store(self) -> list[dict[str, Any]]:
        """Store the hits as the operation's evidence; one row per value, most frequent first."""
        return [{"value": h.value, "asset": h.hit.asset, "rule": h.hit.rule, "count": h.count}
                for h in store_log_hits(self.node, self.operation, self.log)]


def operation_watch(node: Node, name: str) -> OperationWatch:
    """The watch of the operation called `name` (its slug or name; a usage error when there is none). A closed
    operation is refused before any log is read: its hits could not be stored."""
    operation = find(node.store, name)
    operation.require_open()
    return OperationWatch(node, operation, LogWatch(watchlist_of(node, operation)))
