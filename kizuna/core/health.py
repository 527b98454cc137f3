"""Is the node ready, and who may read its metrics.

Readiness is a list of named checks, each answering "ok" or what is wrong.  The checks here concern
the store: it answers over a new connection, and its schema is the one this code expects.  Other
rooms add their own (federation adds "is a sync worker alive"); ``kizuna/taxii/health.py`` serves
them at ``/readyz``.  The check texts are shown to unauthenticated callers, so they name the fault
and never the data: no paths, URLs or object details (the full reason goes to the server log).

Metrics access is configured in ``kizuna.toml``::

    [metrics]
    access = "loopback"   # default: only clients connecting from 127.0.0.0/8 or ::1
    # access = "token"    # any client presenting a token granted the metrics right

The metrics right is node-level (token rights are otherwise per collection), so it is kept in the
node's settings as the list of token ids that hold it (``kizuna metrics token|grant|revoke``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kizuna.config import NodeConfig, metrics_access_mode, read_toml
from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.core.tokens import issue_token
from kizuna.store.base import Store, StoreError

log = logging.getLogger("kizuna.health")

OK = "ok"
_READERS_SETTING = "metrics_token_ids"

#: A readiness check: its name and a function answering "ok" (or "skipped: …") or what is wrong.
ReadinessCheck = tuple[str, Callable[[], str]]


def passed(answer: str) -> bool:
    return answer == OK or answer.startswith("skipped")


def store_checks(node: Node) -> list[ReadinessCheck]:
    """The database answers, and no migration is pending (in either direction)."""
    probe: dict[str, tuple[int, int] | None] = {}

    def database() -> str:
        try:
            probe["versions"] = node.store.schema_versions()
        except StoreError as exc:
            probe["versions"] = None
            log.warning("readiness: %s", exc)
            return "unreachable"
        return OK

    def migrations() -> str:
        versions = probe.get("versions")
        if versions is None:
            return "unknown: the database is unreachable"
        applied, known = versions
        if applied < known:
            return f"pending: the database is at schema {applied}, this Kizuna needs {known} (restart to migrate)"
        if applied > known:
            return f"the database is at schema {applied}, newer than this Kizuna knows ({known}); upgrade Kizuna"
        return OK

    return [("database", database), ("migrations", migrations)]


def run_checks(checks: list[ReadinessCheck]) -> tuple[bool, dict[str, str]]:
    """Run every check in order (a check may rely on an earlier one); (all passed, answers)."""
    answers: dict[str, str] = {}
    for name, check in checks:
        try:
            answers[name] = check()
        except Exception as exc:  # a check that breaks is a failed check, not a crashed probe
            log.warning("readiness check %s failed: %r", name, exc)
            answers[name] = "failed"
    return all(passed(answer) for answer in answers.values()), answers


# -- who may read /metrics ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetricsAccess:
    mode: str  # one of config.METRICS_ACCESS_MODES


def metrics_access(config: NodeConfig) -> MetricsAccess:
    """The ``[metrics]`` table of ``kizuna.toml`` (absent: loopback only)."""
    return MetricsAccess(metrics_access_mode(config.path, read_toml(config.path)))


def metrics_readers(store: Store) -> set[str]:
    """Ids of the tokens holding the metrics right."""
    stored = store.get_setting(_READERS_SETTING)
    return set(orjson.loads(stored)) if stored else set()


def issue_metrics_token(node: Node, organisation: str, label: str | None) -> tuple[str, str]:
    """A token of ``organisation`` that may read /metrics and no collection; (id, secret shown once)."""
    org = node.store.get_organisation(organisation)
    if org is None:
        raise AdminError(f"no organisation {organisation!r}; create it with `kizuna orgs create`")
    token_id, secret = issue_token(node.store, org.id, (), label)
    node.audit.record("token-created", "admin", {"token": token_id, "organisation": org.id, "grants": []})
    set_metrics_right(node, token_id, True)  # before the secret is shown, so it never lacks the right
    return token_id, secret


def set_metrics_right(node: Node, token_id: str, granted: bool) -> bool:
    """Grant or withdraw the metrics right of a token; return whether anything changed."""
    readers = metrics_readers(node.store)
    if (token_id in readers) == granted:
        return False
    readers = readers | {token_id} if granted else readers - {token_id}
    node.store.set_setting(_READERS_SETTING, orjson.dumps(sorted(readers)).decode())
    node.audit.record("metrics-right", "admin", {"token": token_id, "granted": granted})
    return True


# -- numbers read from the store at scrape time --------------------------------------------
class StoreCollector:
    """Objects held per collection, read at scrape time so every process and command is counted."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        objects = GaugeMetricFamily(
            "kizuna_collection_objects", "Object versions stored per collection (by any process or command).",
            labels=["api_root", "collection"],
        )
        newest = GaugeMetricFamily(
            "kizuna_collection_last_added_timestamp_seconds", "date_added of the newest version per collection.",
            labels=["api_root", "collection"],
        )
        # Series are keyed by the collection's id, which never changes; its alias and title (which an operator
        # may change) are labels of an info series that dashboards join on, so a rename keeps the history.
        names = GaugeMetricFamily(
            "kizuna_collection_info", "1 per collection, naming it: join on (api_root, collection) for its alias "
            "and title.", labels=["api_root", "collection", "alias", "title"],
        )
        for status in self.node.collection_status():
            collection = status.collection
            labels = [collection.api_root, collection.id]
            objects.add_metric(labels, status.objects)
            names.add_metric([*labels, collection.alias or "", collection.title], 1)
            if status.last_added is not None:
                newest.add_metric(labels, status.last_added / 1_000_000)
        yield objects
        yield newest
        yield names
