"""One sync run with one partner: pull what is new there, push what is new here.

Pull pages with ``match[version]=all`` from the partner's collection, following ``next`` when the
server gives one and falling back to ``added_after = X-TAXII-Date-Added-Last`` when it does not.  Each
page commits together with the cursor that points past it (``FederationState.commit_pull_page``), so
a run killed at any moment resumes after the last committed page; versions re-read after a resume
are recognised by their ``(id, modified)`` identity and are not stored twice.

Push reads this node's collection through ``Node.read`` as the partner's principal (the one
visibility check decides what the partner may see) from a per-partner high-water mark of
``date_added``, applies the federation egress rules, and posts the rest.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from kizuna.core.errors import KizunaError
from kizuna.core.filters import Endpoint, Filters
from kizuna.core.node import Node
from kizuna.federation.client import PartnerError, RemotePage, TaxiiClient
from kizuna.federation.config import DEFAULT_SCHEDULE_S, CollectionMapping, ConfigProblem, PartnerConfig
from kizuna.federation.egress import may_send, partner_principal, select_for_partner
from kizuna.federation.flowback import FlowBack, flow_back_agreement
from kizuna.federation.misp_feed import MispConverter, MispFeedPoller, new_counts
from kizuna.federation.recall import tombstones_for
from kizuna.federation.runs import RUN_LEASE_TTL_S, RunLease, describe_failure, worker_id
from kizuna.federation.state import (
    DEFINITION_TYPES,
    CursorKey,
    FederationState,
    QuarantineEntry,
    Source,
)
from kizuna.policy.onward import same_node
from kizuna.stix.timestamps import format_timestamp, now_micros, parse_timestamp
from kizuna.store.base import Collection, VersionQuery, VersionSelector

BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 3600.0
_ALL_VERSIONS = VersionSelector(all=True)


def backoff_delay_s(failures: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at an hour, each scaled by 0.5–1.0."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1)) * (0.5 + rng() / 2)


@dataclass(frozen=True, slots=True)
class PullPosition:
    """Where a pull stands: the ``added_after`` of the current chain, its ``next``, and the last
    ``date_added`` of the last committed page (what a broken chain restarts from)."""

    after: int | None = None
    next: str | None = None
    last: int | None = None

    def dumps(self) -> str:
        return orjson.dumps({"after": self.after, "next": self.next, "last": self.last}).decode()

    @classmethod
    def loads(cls, text: str | None) -> PullPosition:
        if not text:
            return cls()
        data = orjson.loads(text)
        return cls(data.get("after"), data.get("next"), data.get("last"))


def _timestamp(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except (ValueError, TypeError):
        return None


def advance(position: PullPosition, more: bool, token: str | None, first: int | None, last: int | None) -> PullPosition:
    """The position after a page with these ``more``/``next`` and date headers."""
    high = last if last is not None else position.last
    if more and token:
        return PullPosition(position.after, token, high)
    if more:
        if last is None:
            raise PartnerError("the partner said more=true but gave neither next nor X-TAXII-Date-Added-Last",
                               kind="malformed")
        # Re-read from one microsecond before the page's last date_added: versions that share that
        # date_added (ties across the page boundary) come again and are recognised as duplicates.
        # A page entirely on one date_added cannot step back without repeating itself.
        step_back = last - 1 if first is not None and first < last else last
        if position.after is not None and step_back <= position.after:
            step_back = last
        return PullPosition(step_back, None, high)
    return PullPosition(high if high is not None else position.after, None, high)


class PageWalk:
    """The pages one walk of a partner's collection has read: each a cursor and what the page held. A partner
    that answers ``more`` and serves the same page again from the same cursor (the same ``next`` and the same
    objects, or dates that do not move) would be read for ever, and the worker syncs partners one after another:
    the walk stops with a partner error instead, and the others sync. A cursor alone may come back: medallion
    hands out one ``next`` token for a whole walk and moves what it names along."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def step(self, cursor: str, held: Any) -> None:
        """``cursor``: where the next request goes; ``held``: what this page held (JSON-serialisable)."""
        page = hashlib.sha256(cursor.encode() + b"\0" + orjson.dumps(held)).digest()
        if page in self._seen:
            raise PartnerError("the partner said more=true and served a page it had already served in this run, "
                               f"from the same cursor ({cursor[:80]}): its pages go round in a circle",
                               kind="malformed")
        self._seen.add(page)


def _page_held(page: RemotePage) -> list[Any]:
    """What tells one page of objects from another: its objects' ids and versions, and its date headers."""
    versions = [(obj.get("id"), obj.get("modified")) if isinstance(obj, dict) else None for obj in page.objects]
    return [page.date_added_first, page.date_added_last, versions]


@dataclass(slots=True)
class RunReport:
    partner: str
    pulled: int = 0
    duplicates: int = 0
    quarantined: int = 0
    redacted_copies: int = 0
    upgraded: int = 0
    normalised: int = 0
    pushed: int = 0
    push_refused: int = 0
    recalled: int = 0
    recalls_sent: int = 0
    sightings_flowed: int = 0
    pages: int = 0
    #: MISP feed partners: events imported, events the feed did not serve or that could not be used,
    #: and the entries of the converters' loss reports (each event's report is in the audit log).
    events: int = 0
    events_failed: int = 0
    losses: int = 0
    error: str | None = None
    skipped: bool = False
    mappings: list[dict[str, Any]] = field(default_factory=list)
    #: Things an operator should know about a run that is not an error (e.g. the agreement hid everything).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner, "pulled": self.pulled, "duplicates": self.duplicates,
            "quarantined": self.quarantined, "redacted_copies": self.redacted_copies, "upgraded": self.upgraded,
            "normalised": self.normalised, "pushed": self.pushed, "push_refused": self.push_refused,
            "recalled": self.recalled, "recalls_sent": self.recalls_sent, "sightings_flowed": self.sightings_flowed,
            "pages": self.pages, "events": self.events, "events_failed": self.events_failed,
            "losses": self.losses, "error": self.error, "skipped": self.skipped, "mappings": self.mappings,
            "notes": self.notes,
        }


class Syncer:
    def __init__(
        self, node: Node, heartbeat: Callable[[], None] | None = None,
        clock: Callable[[], int] = now_micros, rng: Callable[[], float] = random.random,
        holder: str | None = None, lease_ttl_s: float = RUN_LEASE_TTL_S,
        progress: Callable[[RunReport], None] | None = None, misp_converter: MispConverter | None = None,
    ) -> None:
        self.node = node
        self._misp_converter = misp_converter
        self.state = FederationState(node.store)
        self._heartbeat = heartbeat or (lambda: None)
        self._progress = progress or (lambda report: None)
        self.holder = holder or worker_id()
        self.lease_ttl_s = lease_ttl_s
        self._clock = clock
        self._rng = rng
        identity = node.identity().get("id")
        self.own_identities = frozenset({identity} if identity else ())

    # -- one partner -----------------------------------------------------------------
    def due(self, partner: str) -> bool:
        return self.state.get_status(partner).next_attempt <= self._clock()

    def sync_partner(self, name: str, force: bool = True) -> RunReport:
        """One run with one partner.  Whatever goes wrong in it is recorded on that partner (state
        ``backoff``, its error, the next attempt) and returned in the report, never raised: one bad
        partner must not stop the others.  ``KeyError`` only when no such partner exists."""
        if name not in self.state.partner_names():
            raise KeyError(name)
        report = RunReport(name)
        status = self.state.get_status(name)
        started = self._clock()
        if not force and status.next_attempt > started:
            report.skipped = True
            return report
        self.state.put_status(replace(status, state="running", last_attempt=started))
        schedule_s = DEFAULT_SCHEDULE_S  # the default, for a partner whose configuration is unreadable
        with RunLease(self.state, name, self.holder, self.lease_ttl_s):
            try:
                partner = self.state.get_partner(name)
                if partner is None:
                    raise ConfigProblem("the partner was removed during the run")
                schedule_s = partner.schedule_s
                self._run(partner, report)
            except (PartnerError, KizunaError, ConfigProblem) as exc:
                report.error = str(exc)
            except Exception as exc:  # anything else is this partner's failure too, not the worker's
                report.error = describe_failure(exc)
            if report.error is not None and not report.error.startswith(f"{name}: "):
                # Every failure names its partner, as the client's own do: what a page's content, the walk or
                # the configuration says otherwise reads as nobody's in `kizuna sync` and `partners list`.
                report.error = f"{name}: {report.error}"
            self._record(name, report, schedule_s)
        return report

    def _run(self, partner: PartnerConfig, report: RunReport) -> None:
        if partner.is_misp_feed:
            self._poll_feed(partner, report)
            return
        with TaxiiClient(partner) as client:
            for mapping in partner.mappings:
                local = self.node.find_collection(mapping.local)
                if mapping.direction.pulls:
                    self._pull(client, partner, mapping, local, report)
                    self._recall(client, partner, mapping, local, report)
                if mapping.direction.pushes:
                    first_push = self.state.get_cursor(
                        CursorKey(partner.name, "push", local.id, mapping.remote)
                    ) is None
                    self._flow_back(client, partner, mapping, local, report)
                    self._push(client, partner, mapping, local, report)
                    self._recall_pushed(client, partner, mapping, local, report, first_push)

    def _record(self, name: str, report: RunReport, schedule_s: int) -> None:
        """The run's outcome on the partner: totals, last run, and the next attempt (schedule or backoff)."""
        finished = self._clock()
        status = self.state.get_status(name)
        status = replace(
            status, pulled=status.pulled + report.pulled, pushed=status.pushed + report.pushed,
            quarantined=status.quarantined + report.quarantined + report.push_refused,
            last_run=orjson.dumps({**report.as_dict(), "finished": format_timestamp(finished)}).decode(),
        )
        if report.error is None:
            self.state.put_status(replace(
                status, state="ok", failures=0, next_attempt=finished + schedule_s * 1_000_000,
                last_success=finished, last_error=None,
            ))
        else:
            failures = status.failures + 1
            delay = backoff_delay_s(failures, self._rng)
            self.state.put_status(replace(
                status, state="backoff", failures=failures, next_attempt=finished + int(delay * 1_000_000),
                last_error=report.error,
            ))

    # -- MISP feed ---------------------------------------------------------------------
    def _poll_feed(self, partner: PartnerConfig, report: RunReport) -> None:
        """Import the feed's new and changed events into the partner's one collection."""
        if self._misp_converter is None:
            raise ConfigProblem("this process was started without a MISP converter; run `kizuna sync`")
        local = self.node.find_collection(partner.mappings[0].local)
        counts = new_counts(local)
        report.mappings.append(counts)

        def after_event() -> None:
            report.pulled, report.duplicates = counts["added"], counts["duplicates"]
            report.quarantined, report.normalised = counts["quarantined"], counts["normalised"]
            report.redacted_copies, report.upgraded = counts["redacted_copies"], counts["upgraded"]
            report.events, report.events_failed = counts["imported"], len(counts["failed"])
            report.losses = counts["losses"]
            self._heartbeat()
            self._progress(report)

        try:
            MispFeedPoller(self.node, self.state, self._misp_converter, after_event).poll(
                partner, local, counts, report.notes)
        finally:
            after_event()

    # -- pull ------------------------------------------------------------------------
    def _pull(
        self, client: TaxiiClient, partner: PartnerConfig, mapping: CollectionMapping, local: Collection,
        report: RunReport,
    ) -> None:
        key = CursorKey(partner.name, "pull", local.id, mapping.remote)
        # The partner's digest of the terms we read under, as of the last complete pull (a Kizuna partner
        # sends it with each page; see _restart_for_terms).
        terms_key = CursorKey(partner.name, "pull-terms", local.id, mapping.remote)
        agreed = stored_terms = self.state.get_cursor(terms_key)
        source = Source(partner.name, mapping.remote)
        position = PullPosition.loads(self.state.get_cursor(key))
        counts: dict[str, Any] = {"direction": "pull", "local": local.alias or local.id, "remote": mapping.remote,
                                  "added": 0, "duplicates": 0, "quarantined": 0, "redacted_copies": 0,
                                  "upgraded": 0, "normalised": 0}
        def fetch(at: PullPosition) -> RemotePage:
            params = {"match[version]": "all", "limit": str(partner.page_size)}
            if at.after is not None:
                params["added_after"] = format_timestamp(at.after)
            if at.next:
                params["next"] = at.next
            return client.get_objects(mapping.remote, params)

        # One page is fetched ahead while the current one is validated and committed: the partner's
        # serving time and ours overlap.  Commits stay strictly in page order.
        walk = PageWalk()
        restarts = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kizuna-pull") as pool:
            pending: Future[RemotePage] = pool.submit(fetch, position)
            while True:
                try:
                    page = pending.result()
                except PartnerError as exc:
                    if exc.kind == "expired-cursor" and position.next:
                        # The partner forgot the cursor (medallion keeps them in memory for 30 s):
                        # restart after the last committed page; the overlap comes back as duplicates.
                        position = PullPosition(position.last, None, position.last)
                        pending = pool.submit(fetch, position)
                        continue
                    raise
                if self._restart_for_terms(page, agreed, position, partner, mapping, report):
                    restarts += 1
                    if restarts > 2:  # terms that change page after page would restart the walk for ever
                        raise PartnerError("the partner's terms changed three times in one pull", kind="malformed")
                    agreed, position, walk = page.terms, PullPosition(), PageWalk()
                    pending = pool.submit(fetch, position)
                    continue
                new_position = advance(
                    position, page.more, page.next, _timestamp(page.date_added_first),
                    _timestamp(page.date_added_last),
                )
                if page.more:
                    walk.step(new_position.dumps(), _page_held(page))
                    pending = pool.submit(fetch, new_position)
                commit = self.state.commit_pull_page(
                    self.node, local.pk, page.objects, source, key, new_position.dumps()
                )
                del page.objects[:]  # the parsed page is the largest thing held; let it go
                report.pages += 1
                report.pulled += commit.added
                report.duplicates += commit.duplicates
                report.quarantined += commit.quarantined
                report.redacted_copies += commit.redacted_copies
                report.upgraded += commit.upgraded
                report.normalised += commit.normalised
                for name in ("added", "duplicates", "quarantined", "redacted_copies", "upgraded", "normalised"):
                    counts[name] += getattr(commit, name)
                if commit.normalised:
                    # As for a TAXII POST: the rewrites of TLP aliases are on record.
                    self.node.audit.record("write", f"partner:{partner.name}", {
                        "collection": local.id, "remote_collection": mapping.remote,
                        "normalised": commit.normalised, "normalisations": commit.normalisations,
                    })
                self._heartbeat()
                self._progress(report)
                position = new_position
                if not page.more:
                    if page.terms is not None and page.terms != stored_terms:
                        # Stored only once the collection was read to its end under these terms: a pull cut
                        # short reads from the start again.
                        self.state.save_cursor(terms_key, page.terms)
                    break
        report.mappings.append(counts)

    @staticmethod
    def _restart_for_terms(
        page: RemotePage, agreed: str | None, position: PullPosition, partner: PartnerConfig,
        mapping: CollectionMapping, report: RunReport,
    ) -> bool:
        """Whether to read the remote collection again from the start: the partner says the terms we read under
        changed since the last complete pull (it widened our agreement, say), so versions it added before the
        change, behind our position, may be ours to read now. What we hold already comes back as duplicates.
        A first pull, or a partner that does not say (not Kizuna), reads on from where it stands."""
        if page.terms is None or agreed is None or page.terms == agreed or position == PullPosition():
            return False
        report.notes.append(
            f"pull {mapping.remote} from {partner.name}: the terms {partner.name} lets us read under changed since "
            "the last pull, so the collection is read again from the start (what is held already is kept once)")
        return True

    # -- recall --------------------------------------------------------------------------
    def _same_node(self, partner: PartnerConfig) -> frozenset[str]:
        """Every partner entry that stands for the same node (same API root URL)."""
        roots = {p.name: p.api_root_url for p in self.state.list_partners()}
        return same_node(partner.name, {**roots, partner.name: partner.api_root_url})

    def _recall(
        self, client: TaxiiClient, partner: PartnerConfig, mapping: CollectionMapping, local: Collection,
        report: RunReport,
    ) -> None:
        """Apply the partner's tombstones: delete the versions that came from it and have left it."""
        key = CursorKey(partner.name, "recall", local.id, mapping.remote)
        saved = self.state.get_cursor(key)
        position = orjson.loads(saved) if saved else {"deleted": 0, "withdrawn": 0}
        sources = self._same_node(partner)
        walk = PageWalk()
        while True:
            page = client.get_tombstones(mapping.remote, {
                "deleted_after": str(position["deleted"]), "withdrawn_after": str(position["withdrawn"]),
                "limit": str(partner.page_size),
            })
            if page is None:
                return  # not a Kizuna node: deletions cannot be learnt over plain TAXII
            wanted: dict[str, set[int]] = {}
            by_content: dict[str, set[str]] = {}
            for entry in page["tombstones"]:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    continue
                if isinstance(entry.get("sha256"), str):
                    # An unversioned SCO: its version is the partner's date_added, so it is named by content.
                    by_content.setdefault(entry["id"], set()).add(entry["sha256"])
                elif isinstance(entry.get("version_us"), int):
                    wanted.setdefault(entry["id"], set()).add(entry["version_us"])
            position = {"deleted": page["deleted_last"], "withdrawn": page["withdrawn_last"]}
            report.recalled += self.state.withdraw_received(
                self.node, local.pk, wanted, sources, key, orjson.dumps(position).decode(), by_content,
            )
            self._heartbeat()
            if not page["more"]:
                return
            walk.step(orjson.dumps(position).decode(), page["tombstones"])

    # -- recall towards partners we push to ---------------------------------------------------
    def _recall_pushed(
        self, client: TaxiiClient, partner: PartnerConfig, mapping: CollectionMapping, local: Collection,
        report: RunReport, started_pushing: bool,
    ) -> None:
        """Send TAXII DELETEs for versions this partner received from our pushes and that have left it.

        What has left is exactly what the tombstones endpoint would tell this partner if it pulled
        (``tombstones_for`` with its principal), minus what the egress rules never sent it (its own
        versions, relayed AMBER+STRICT/RED) and what was added after the push high-water mark.  A
        Kizuna partner applies such a DELETE to the versions we pushed in only (its provenance); any
        TAXII server deletes the named version.  A 404 means the partner no longer holds it.
        """
        key = CursorKey(partner.name, "push-recall", local.id, mapping.remote)
        saved = self.state.get_cursor(key)
        if saved is None and started_pushing:
            # Versions deleted before the first push were never sent; withdrawn ones may have been.
            saved = orjson.dumps({"deleted": self._clock(), "withdrawn": 0}).decode()
        position = orjson.loads(saved) if saved else {"deleted": 0, "withdrawn": 0}
        mark = self.state.get_cursor(CursorKey(partner.name, "push", local.id, mapping.remote))
        if mark is None:
            return
        pushed_until = int(mark)
        viewer = self.node.viewer_for(partner_principal(partner, [local.pk]), local)
        same_node = self._same_node(partner)
        while True:
            page = tombstones_for(self.node, viewer, position["deleted"], position["withdrawn"], partner.page_size)
            rows = [t for t in page.tombstones if t.row is not None and t.row.date_added <= pushed_until]
            provenance = self.state.provenance_of(local.pk, [t.stix_id for t in rows])
            for tombstone in rows:
                assert tombstone.row is not None
                if not may_send(same_node, tombstone.row, provenance.get((tombstone.stix_id, tombstone.version)),
                                self.own_identities):
                    continue
                version = None if tombstone.sha256 is not None else tombstone.version_text
                try:
                    if client.delete_object(mapping.remote, tombstone.stix_id, version):
                        report.recalls_sent += 1
                except PartnerError as exc:
                    if exc.status_code not in (403, 405, 501):
                        raise
                    # The partner does not let this token delete (a write-only token, say): pushing goes on,
                    # the recall waits at its cursor until the partner allows it, and the run says so.
                    report.mappings.append({"direction": "push-recall", "local": local.alias or local.id,
                                            "remote": mapping.remote, "error": str(exc)})
                    return
            position = {"deleted": page.deleted_last, "withdrawn": page.withdrawn_last}
            self.state.save_cursor(key, orjson.dumps(position).decode())
            self._heartbeat()
            if not page.more:
                return

    # -- sightings flow-back -------------------------------------------------------------
    def _flow_back(
        self, client: TaxiiClient, partner: PartnerConfig, mapping: CollectionMapping, local: Collection,
        report: RunReport,
    ) -> None:
        agreement = flow_back_agreement(self.node, partner)
        if agreement is None:
            return
        flow = FlowBack(self.node, partner, local.pk, self._same_node(partner), agreement)
        key = CursorKey(partner.name, "sightings", local.id, mapping.remote)
        saved = self.state.get_cursor(key)
        high_water = int(saved) if saved else None
        while True:
            rows = self.node.store.query_versions(VersionQuery(
                collection_pk=local.pk, types=("sighting",), versions=_ALL_VERSIONS, added_after=high_water,
                limit=partner.page_size,
            ))
            if not rows:
                return
            chosen = flow.select(rows)
            if chosen:
                client.post_objects(mapping.remote, b'{"objects":[' + b",".join(body for _, body in chosen) + b"]}")
                report.sightings_flowed += len(chosen)
            high_water = rows[-1].date_added
            self.state.save_cursor(key, str(high_water))
            self._heartbeat()
            if len(rows) < partner.page_size:
                return

    # -- push ------------------------------------------------------------------------
    def _push(
        self, client: TaxiiClient, partner: PartnerConfig, mapping: CollectionMapping, local: Collection,
        report: RunReport,
    ) -> None:
        key = CursorKey(partner.name, "push", local.id, mapping.remote)
        saved = self.state.get_cursor(key)
        mark = high_water = int(saved) if saved else None
        viewer = self.node.viewer_for(partner_principal(partner, [local.pk]), local)
        # What the partner may see changed since the last push (its agreement was widened, say): versions
        # behind the mark that it could not see then are offered with the rest, from the start. The partner
        # keeps one copy of what it holds already. The mark itself never moves back: recall reads it.
        terms_key = CursorKey(partner.name, "push-terms", local.id, mapping.remote)
        terms = viewer.policy.terms() if viewer.policy is not None else ""
        agreed = self.state.get_cursor(terms_key)
        if mark is not None and agreed is not None and agreed != terms:
            high_water = None
            report.notes.append(
                f"push {local.alias or local.id} -> {mapping.remote}: what {partner.name} may see changed since the "
                "last push, so every version it may see now is offered again (what it holds already it keeps once)")
        source = Source(partner.name, mapping.remote)
        same_node = self._same_node(partner)
        agreement = flow_back_agreement(self.node, partner)
        flow = None if agreement is None else FlowBack(self.node, partner, local.pk, same_node, agreement)
        counts: dict[str, Any] = {"direction": "push", "local": local.alias or local.id, "remote": mapping.remote,
                                  "sent": 0, "refused": 0}
        started_after = high_water
        visible = 0
        while True:
            filters = Filters(versions=_ALL_VERSIONS, added_after=high_water, limit=partner.page_size)
            page = self.node.read(viewer, Endpoint.OBJECTS, filters, audited=False)
            if not page.items:
                break
            # Marking and extension definitions are furniture placed beside every object that uses one:
            # they do not count as content the partner can see.
            visible += sum(row.type not in DEFINITION_TYPES for row, _ in page.items)
            provenance = self.state.provenance_of(local.pk, [row.stix_id for row, _ in page.items])
            items = page.items
            if flow is not None:
                # Sightings of the partner's own objects travel only in the flow-back stream, in its form.
                flowing = {(row.stix_id, row.version) for row, _ in flow.select(row for row, _ in items)}
                items = [(row, body) for row, body in items if (row.stix_id, row.version) not in flowing]
            chosen = select_for_partner(same_node, items, provenance, self.own_identities)
            bodies = [body for _, body in chosen]
            status: dict[str, Any] = {}
            answered = False
            try:
                if bodies:
                    status = client.post_objects(mapping.remote, b'{"objects":[' + b",".join(bodies) + b"]}")
                answered = True
            finally:  # what was posted is egress, counted as shared only once the partner answered
                self.node.record_rows_served(viewer, Endpoint.OBJECTS, [row for row, _ in chosen], delivered=answered)
            if bodies:
                refused = [f for f in status.get("failures", ()) if isinstance(f, dict)]
                if refused:
                    self.state.quarantine(source, local.id, [
                        QuarantineEntry(f.get("id"), f.get("version"),
                                        f"refused by partner on push: {f.get('message', 'no reason given')}", None)
                        for f in refused
                    ])
                sent = len(bodies) - len(refused)
                report.pushed += sent
                report.push_refused += len(refused)
                counts["sent"] += sent
                counts["refused"] += len(refused)
            high_water = page.items[-1][0].date_added
            if mark is None or high_water > mark:
                mark = high_water
                self.state.save_cursor(key, str(mark))
            report.pages += 1
            self._heartbeat()
            self._progress(report)
            if not page.more:
                break
        if agreed != terms:  # only once every page was offered: a run cut short offers them again
            self.state.save_cursor(terms_key, terms)
        if visible == 0:
            waiting = self.state.versions_after(local.pk, started_after, content_only=True)
            if waiting:
                # Nothing moved, and not because nothing is new: say so, or "pushed 0" looks like success.
                counts["hidden"] = waiting
                terms = f"agreement {partner.agreement!r}" if partner.agreement else "no agreement (TLP:CLEAR only)"
                report.notes.append(
                    f"push {local.alias or local.id} -> {mapping.remote}: none of the {waiting} version(s) waiting "
                    f"is visible to {partner.name} under {terms}: the agreement hides everything, so no object "
                    + ("was sent" if not counts["sent"] else
                       f"was sent but {counts['sent']} marking or extension definition(s)")
                )
        report.mappings.append(counts)
