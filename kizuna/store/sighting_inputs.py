"""What each input contributed to a stored sighting (schema step 22), shared by both SQL backends.

Matching aggregates hits into one sighting per indicator, window and sighter, with a deterministic id, so
the same window seen in two log files is one sighting. Its count is the sum of what every input saw, and
its first and last seen the earliest and latest of theirs: each input's share is kept here under a key
that names the input (core/sightings.py says which), so matching another file adds its share and matching
the same file again replaces its own share rather than counting it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from kizuna.store.ops_alerts import OpsRows, chunks


class SightingShare(NamedTuple):
    """One input's hits of one sighting: how many, the first and the last (STIX timestamps)."""

    sighting_id: str
    input: str
    hits: int
    first_seen: str
    last_seen: str


class SightingTotal(NamedTuple):
    hits: int
    first_seen: str
    last_seen: str


class SightingInputRows(OpsRows):

    def record_sighting_shares(self, collection_pk: int, shares: Sequence[SightingShare]) -> dict[str, SightingTotal]:
        """Keep ``shares`` (an input's share replaces what that input held before) and return, for every
        sighting they name, the total over all the inputs ever recorded for it, in one transaction."""
        ids = sorted({share.sighting_id for share in shares})
        totals: dict[str, SightingTotal] = {}
        with self._write() as cur:
            cur.executemany(
                "INSERT INTO sighting_inputs (collection_pk, sighting_id, input, count, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (collection_pk, sighting_id, input) DO UPDATE SET "
                "count = excluded.count, first_seen = excluded.first_seen, last_seen = excluded.last_seen",
                [(collection_pk, *share) for share in shares],
            )
            for chunk in chunks(ids):
                clause, params = self._in("sighting_id", chunk)
                cur.execute(
                    "SELECT sighting_id, SUM(count), MIN(first_seen), MAX(last_seen) FROM sighting_inputs "
                    f"WHERE collection_pk = ? AND {clause} GROUP BY sighting_id", (collection_pk, *params))
                totals.update((row[0], SightingTotal(int(row[1]), str(row[2]), str(row[3])))
                              for row in cur.fetchall())
        return totals
