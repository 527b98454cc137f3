"""The full-text search index: the searchable text of every stored object version (schema step 11).

One index row per row of ``objects``, keyed by its ``seq``, removed in the transaction that deletes the
version, so the index never names a version that is not stored. A new version's text is written to
``search_backlog`` in the transaction that writes the version (a plain append) and moved into the index
afterwards, in larger batches, by a background thread of the store (``store/search_backlog.py``): the
index's own work, about a quarter of a POST's on SQLite and half of it on PostgreSQL (its trigram index
grows with every row), then runs beside the next request's validation instead of inside the writer's
transaction. Every search first empties the backlog, so a search never misses a stored version; a crash
leaves the backlog to the next search. (SQLite since schema step 17, PostgreSQL since step 24.)
Indexing every version rather than only the newest keeps each principal's own history
(docs/policy.md): a reader who may not see an object's newest version still finds it by the text of
the version it does see. The store answers only "which versions contain these words"; which of them a
principal receives is decided in ``core/search.py`` by the one visibility check.

* SQLite: an FTS5 table with the ``trigram`` tokenizer, kept without token positions (``detail=none``,
  schema step 26: a third less work per indexed row). Any substring of three or more characters is an
  index lookup, in every script, without a word splitter (Japanese has no spaces): the index gives the
  rows holding each of the word's trigrams, and ``holds`` then checks the word itself in each such row,
  case-folded as ``stix/search_text.matches`` folds it, so the index and the core's check agree. A term of
  one or two characters (攻撃) cannot use trigrams: it is checked with ``LIKE`` over the indexed text, a
  scan that stops as soon as the page and the count are full.
* PostgreSQL: a ``pg_trgm`` GIN index over a plain text table, queried with ``ILIKE``; the same
  substring semantics, and the same fallback for short terms (the index cannot narrow them down).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Final

import orjson

from kizuna.stix.search_text import TRIGRAM, fold, indexable, is_pair_term, pairs, searchable_text
from kizuna.store.base import SearchQuery
from kizuna.store.stored_batches import stored_batches

_DRAIN_LOCK: Final = 0x6B697A76  # an arbitrary advisory-lock key: one PostgreSQL backlog drain at a time
_BEFORE_ALL: Final = 1 << 62
_ROW_COLUMNS: Final = (
    "o.seq, o.stix_id, o.type, o.version, o.spec_version, o.date_added, o.created_by_ref, o.markings, o.body, "
    "o.is_first, o.is_last, o.embeds, o.object_markings"
)
#: language-content is searched for the object it translates: filters on the object apply to that object.
_TRANSLATION: Final = "o.type = 'language-content'"


def text_of(body: bytes) -> str:
    """The searchable text of a stored body; a body that is not a JSON object has none."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return text_of_object(obj) if isinstance(obj, dict) else ""


def text_of_object(obj: dict[str, Any]) -> str:
    """The searchable text of a parsed object, as ``text_of`` gives it for the object's stored body."""
    return indexable(searchable_text(obj))


def holds(text: str | None, folded_term: str) -> bool:
    """Whether an indexed text holds a term already folded (``stix/search_text.fold``): SQLite's ``kizuna_holds``,
    registered on every connection of the store, since SQLite's own ``LIKE`` folds ASCII letters only."""
    return text is not None and folded_term in fold(text)


def _trigrams(terms: Sequence[str]) -> str:
    """An FTS5 query for rows holding every trigram of every term, each trigram a phrase of its own: an index
    without token positions answers no phrase of several tokens, so the terms themselves are checked after."""
    grams = dict.fromkeys(term[i:i + TRIGRAM] for term in terms for i in range(len(term) - TRIGRAM + 1))
    return " ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchIndex(abc.ABC):
    """What differs between the backends; the statements around it are shared."""

    #: The index column that holds the ``objects.seq`` of the indexed version.
    key = "seq"
    #: With a number: look for matches among this many newest index rows first (see ``statement``).
    window: int | None = None
    gather_cap = 0

    def _add_text(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        cur.executemany(f"INSERT INTO search_text ({self.key}, text) VALUES (?, ?)", rows)

    def _add_pairs(self, cur: Any, rows: Sequence[tuple[str, int]]) -> None:
        cur.executemany("INSERT INTO search_pairs (pair, seq) VALUES (?, ?)", rows)

    def _add_backlog(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        cur.executemany("INSERT INTO search_backlog (seq, text) VALUES (?, ?)", rows)

    def _remove_backlog(self, cur: Any, where: str, params: Sequence[Any]) -> None:
        cur.execute(f"DELETE FROM search_backlog WHERE seq IN (SELECT seq FROM objects WHERE {where})", params)

    @abc.abstractmethod
    def drain(self, cur: Any, limit: int, through: int | None = None) -> int:
        """Move up to ``limit`` of the oldest backlog rows (up to seq ``through``) into the index; return how
        many moved."""

    @abc.abstractmethod
    def _text_terms(self, terms: Sequence[str]) -> list[tuple[str, Any]]:
        """Conditions on ``s`` for terms of three or more characters, with their parameters."""

    @abc.abstractmethod
    def _scan_term(self, term: str) -> tuple[str, Any]:
        """A condition for a short term neither index can find: a scan of the indexed text."""

    # -- shared ------------------------------------------------------------------------
    def add(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        self._add_text(cur, rows)
        self._add_pairs(cur, [(pair, seq) for seq, text in rows for pair in sorted(pairs(text))])

    def remove(self, cur: Any, where: str, params: Sequence[Any]) -> None:
        """Drop the index rows of the versions ``where`` selects in ``objects``, waiting or indexed.

        The backlog first: a drain that is moving one of these versions into the index holds its backlog
        row, so this waits for it to commit and then finds (and removes) the index row it wrote."""
        self._remove_backlog(cur, where, params)
        cur.execute(f"DELETE FROM search_text WHERE {self.key} IN (SELECT seq FROM objects WHERE {where})", params)
        cur.execute(f"DELETE FROM search_pairs WHERE seq IN (SELECT seq FROM objects WHERE {where})", params)

    def match(self, terms: Sequence[str]) -> tuple[list[str], list[Any]]:
        """WHERE conditions on the index table ``s`` that hold when every term occurs (no pair terms)."""
        found = self._text_terms([term for term in terms if len(term) >= TRIGRAM])
        found += [self._scan_term(term) for term in terms if len(term) < TRIGRAM]
        return [clause for clause, _ in found], [value for _, value in found]

    @abc.abstractmethod
    def _row_has(self, term: str) -> tuple[str, Any]:
        """A condition that the version ``o`` holds ``term``, checked row by row (pair-driven queries)."""

    def pair_match(self, terms: Sequence[str]) -> tuple[list[str], list[Any]]:
        """With a two-character word among the terms, the pair table ``s`` drives the query: its primary key
        walks that pair's versions newest first, and the other terms are checked on each of them."""
        driver = next(term for term in terms if is_pair_term(term))
        where, params = ["s.pair = ?"], [fold(driver)]
        for term in terms:
            if term == driver:
                continue
            if is_pair_term(term):
                clause = "EXISTS (SELECT 1 FROM search_pairs p WHERE p.pair = ? AND p.seq = o.seq)"
                value = fold(term)
            else:
                clause, value = self._row_has(term)
            where.append(clause)
            params.append(value)
        return where, params

    def windowed(self, query: SearchQuery) -> bool:
        """Whether to look in the newest ``window`` index rows first: a common word fills a page there
        at once, where the trigram index would first collect every match (all but PostgreSQL's plans
        for rare words; FTS5 walks its matches newest first by itself)."""
        return self.window is not None and not any(is_pair_term(term) for term in query.terms)

    def gather(self, found: int, window_floor: int) -> bool:
        """When the newest ``window`` index rows gave only ``found`` candidates, whether the words look rare
        enough to collect all their index rows below ``window_floor`` at once (``statement(gathered=True)``):
        at that rate, at most ``gather_cap`` of them. Walking newest first reads about ``window / found``
        index rows per candidate, for a rare word most of the index."""
        return self.window is not None and found * window_floor <= self.gather_cap * self.window

    def overflows(self, cur: Any, query: SearchQuery) -> bool:
        """Whether more than ``gather_cap`` index rows below ``query.before_seq`` hold the words."""
        where, params = self.match(query.terms)
        if query.before_seq is not None:
            where.append(f"s.{self.key} < ?")
            params.append(query.before_seq)
        cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM search_text s WHERE {' AND '.join(where)} LIMIT ?) c",
                    (*params, self.gather_cap + 1))
        return int(cur.fetchone()[0]) > self.gather_cap

    def window_floor(self, cur: Any, before_seq: int | None) -> int | None:
        """The lowest seq in the window below ``before_seq``, or None when the window holds every row."""
        cur.execute(
            f"SELECT MIN(seq), COUNT(*) FROM (SELECT {self.key} AS seq FROM search_text WHERE {self.key} < ? "
            f"ORDER BY {self.key} DESC LIMIT ?) w",
            (_BEFORE_ALL if before_seq is None else before_seq, self.window),
        )
        low, count = cur.fetchone()
        return None if low is None or int(count) < (self.window or 0) else int(low)

    def index_added(self, cur: Any, added: Sequence[tuple[int, bytes, str | None]]) -> None:
        """Index the versions just inserted, given as (seq, body, its searchable text if the caller had it; else
        it is read from the body)."""
        rows = [(seq, text_of(body) if text is None else text) for seq, body, text in added]
        self.index_new(cur, [(seq, text) for seq, text in rows if text])

    def index_new(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        """Index versions just added (``index_added``): the text waits in the backlog (see the module's
        docstring); the pairs, rare and cheap, go in now."""
        self._add_backlog(cur, rows)
        self._add_pairs(cur, [(pair, seq) for seq, text in rows for pair in sorted(pairs(text))])

    def reindex(self, cur: Any, where: str, params: Sequence[Any]) -> None:
        """Replace the index rows of the versions ``where`` selects (their body changed)."""
        self.remove(cur, where, params)
        cur.execute(f"SELECT seq, body FROM objects WHERE {where}", params)
        self.add(cur, [(int(seq), text) for seq, body in cur.fetchall() if (text := text_of(bytes(body)))])

    def backfill(self, cur: Any) -> None:
        """Schema step 11: index every version stored before the index existed."""
        for batch in stored_batches(cur, "body"):
            self.add(cur, [(int(seq), text) for seq, body in batch if (text := text_of(bytes(body)))])

    def statement(self, query: SearchQuery, in_clause: Any, windowed: bool = False,
                  gathered: bool = False) -> tuple[str, list[Any]]:
        """The candidate query: versions that may be some reader's latest and contain every term, newest
        stored first, narrowed by the filters that can be read from the row (checked again in the core).

        A language-content version passes the narrowing filters: it is found for the object it
        translates, whose own type, producer, time and provenance the core checks.

        ``gathered`` (a rare word, ``gather``): the index rows holding the terms are collected from the
        trigram index first, sorted, and only then looked up in ``objects`` until the page is full, where
        the planner would otherwise walk the index rows newest first, testing each against the pattern.
        At most ``gather_cap`` + 1 are collected; each row then starts with how many were, and more than
        the cap means the words were not rare after all (the caller walks instead)."""
        by_pairs = any(is_pair_term(term) for term in query.terms)
        where, params = self.pair_match(query.terms) if by_pairs else self.match(query.terms)
        matched = len(where)
        key = "seq" if by_pairs else self.key
        clause, values = in_clause("o.collection_pk", query.collection_pks)
        where += [clause, "o.maybe_last = 1"]
        params += values
        narrow: list[str] = []
        for column, wanted in (("o.type", query.types), ("o.created_by_ref", query.producers)):
            if wanted is not None:
                clause, values = in_clause(column, wanted)
                narrow.append(clause)
                params += values
        for bound, value in ((">=", query.added_from), ("<", query.added_before)):
            if value is not None:
                narrow.append(f"o.date_added {bound} ?")
                params.append(value)
        if query.partner is not None:
            narrow.append(
                "EXISTS (SELECT 1 FROM fed_provenance p WHERE p.collection_pk = o.collection_pk AND "
                "p.stix_id = o.stix_id AND p.version = o.version AND p.partner = ?)"
            )
            params.append(query.partner)
        if narrow:
            where.append(f"(({' AND '.join(narrow)}) OR {_TRANSLATION})")
        if gathered and not by_pairs:
            rows = where[:matched] + ([f"s.{key} < ?"] if query.before_seq is not None else [])
            row_params = params[:matched] + ([query.before_seq] if query.before_seq is not None else [])
            sql = (
                f"WITH m AS MATERIALIZED (SELECT s.{key} AS seq FROM search_text s WHERE {' AND '.join(rows)} "
                f"LIMIT ?) SELECT (SELECT COUNT(*) FROM m), o.collection_pk, {_ROW_COLUMNS} FROM (SELECT seq FROM m "
                "ORDER BY seq DESC OFFSET 0) s CROSS JOIN LATERAL (SELECT * FROM objects o WHERE o.seq = s.seq AND "
                f"{' AND '.join(where[matched:])} OFFSET 0) o LIMIT ?"
            )
            return sql, [*row_params, self.gather_cap + 1, *params[matched:], query.limit]
        source, source_params = "search_pairs" if by_pairs else "search_text", []
        if windowed and not by_pairs:
            source = f"(SELECT {key}, text FROM search_text WHERE {key} < ? ORDER BY {key} DESC LIMIT ?)"
            source_params = [_BEFORE_ALL if query.before_seq is None else query.before_seq, self.window]
        elif query.before_seq is not None:
            where.append(f"s.{key} < ?")
            params.append(query.before_seq)
        sql = (
            f"SELECT o.collection_pk, {_ROW_COLUMNS} FROM {source} s JOIN objects o ON o.seq = s.{key} "
            f"WHERE {' AND '.join(where)} ORDER BY s.{key} DESC LIMIT ?"
        )
        return sql, [*source_params, *params, query.limit]


class SqliteSearchIndex(SearchIndex):
    key = "rowid"

    def drain(self, cur: Any, limit: int, through: int | None = None) -> int:
        cur.execute(
            "SELECT MAX(seq), COUNT(*) FROM (SELECT seq FROM search_backlog WHERE seq <= ? ORDER BY seq LIMIT ?)",
            (_BEFORE_ALL if through is None else through, limit),
        )
        high, count = cur.fetchone()
        if not count:
            return 0
        # One statement each, so the whole batch is indexed inside SQLite (without holding Python's GIL). A
        # version indexed already (the step 11 backfill of an old store) is not indexed twice.
        cur.execute(
            "INSERT INTO search_text (rowid, text) SELECT b.seq, b.text FROM search_backlog b WHERE b.seq <= ? "
            "AND NOT EXISTS (SELECT 1 FROM search_text s WHERE s.rowid = b.seq)",
            (high,),
        )
        cur.execute("DELETE FROM search_backlog WHERE seq <= ?", (high,))
        return int(count)

    def _text_terms(self, terms: Sequence[str]) -> list[tuple[str, Any]]:
        # One MATCH of every term's trigrams, which FTS5 joins with AND, narrows the rows; each term is then
        # checked whole in the few rows that hold all of its trigrams.
        if not terms:
            return []
        return [("search_text MATCH ?", _trigrams(terms)),
                *(("kizuna_holds(s.text, ?)", fold(term)) for term in terms)]

    def _scan_term(self, term: str) -> tuple[str, Any]:
        return "s.text LIKE ? ESCAPE '\\'", _like(term)

    def _row_has(self, term: str) -> tuple[str, Any]:
        if len(term) >= TRIGRAM:
            return "EXISTS (SELECT 1 FROM search_text WHERE rowid = o.seq AND kizuna_holds(text, ?))", fold(term)
        return "EXISTS (SELECT 1 FROM search_text WHERE rowid = o.seq AND text LIKE ? ESCAPE '\\')", _like(term)


class PostgresSearchIndex(SearchIndex):
    window = 5000
    #: At most this many index rows, as the newest window lets one expect, are collected at once for rare words.
    gather_cap = 20_000

    def _add_text(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        if rows:  # COPY: indexing must not halve the bulk import rate
            cur.copy_rows("COPY search_text (seq, text) FROM STDIN (FORMAT BINARY)", ["bigint", "text"], rows)

    def _add_pairs(self, cur: Any, rows: Sequence[tuple[str, int]]) -> None:
        if rows:
            cur.copy_rows("COPY search_pairs (pair, seq) FROM STDIN (FORMAT BINARY)", ["text", "bigint"], rows)

    def _add_backlog(self, cur: Any, rows: Sequence[tuple[int, str]]) -> None:
        if rows:
            cur.copy_rows("COPY search_backlog (seq, text) FROM STDIN (FORMAT BINARY)", ["bigint", "text"], rows)

    def _remove_backlog(self, cur: Any, where: str, params: Sequence[Any]) -> None:
        # Rows are locked in seq order, as a drain locks them: two transactions that both want several of
        # them wait for each other in turn instead of deadlocking.
        cur.execute(
            "DELETE FROM search_backlog WHERE seq IN (SELECT seq FROM search_backlog WHERE seq IN "
            f"(SELECT seq FROM objects WHERE {where}) ORDER BY seq FOR UPDATE)",
            params,
        )

    def drain(self, cur: Any, limit: int, through: int | None = None) -> int:
        # One drain at a time across every process on the database, so a search's drain waits for one under
        # way and then finds its rows in the index; rows locked in seq order (see _remove_backlog).
        cur.execute("SELECT pg_advisory_xact_lock(?)", (_DRAIN_LOCK,))
        cur.execute(
            "WITH moved AS (DELETE FROM search_backlog WHERE seq IN (SELECT seq FROM search_backlog WHERE seq <= ? "
            "ORDER BY seq LIMIT ? FOR UPDATE) RETURNING seq, text), "
            "indexed AS (INSERT INTO search_text (seq, text) SELECT seq, text FROM moved ON CONFLICT (seq) DO NOTHING) "
            "SELECT COUNT(*) FROM moved",
            (_BEFORE_ALL if through is None else through, limit),
        )
        return int(cur.fetchone()[0])

    def _text_terms(self, terms: Sequence[str]) -> list[tuple[str, Any]]:
        return [self._scan_term(term) for term in terms]

    def _scan_term(self, term: str) -> tuple[str, Any]:
        # ILIKE with a backslash escape is PostgreSQL's default; pg_trgm's GIN index serves it from 3 characters.
        return "s.text ILIKE ?", _like(term)

    def _row_has(self, term: str) -> tuple[str, Any]:
        return "EXISTS (SELECT 1 FROM search_text t WHERE t.seq = o.seq AND t.text ILIKE ?)", _like(term)
