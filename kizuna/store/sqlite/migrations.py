"""Versioned schema of the SQLite store; append new steps, never edit applied ones."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE node_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE api_roots (
            name TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT,
            max_content_length INTEGER NOT NULL);
        CREATE TABLE collections (
            pk INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            api_root TEXT NOT NULL REFERENCES api_roots(name), title TEXT NOT NULL, description TEXT,
            alias TEXT, media_types TEXT NOT NULL, last_added INTEGER NOT NULL DEFAULT 0,
            UNIQUE (api_root, alias));
        CREATE TABLE organisations (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, country TEXT, identity BLOB NOT NULL);
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY, organisation_id TEXT NOT NULL REFERENCES organisations(id),
            secret_hash TEXT NOT NULL, label TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER);
        CREATE TABLE grants (
            token_id TEXT NOT NULL REFERENCES tokens(id), collection_pk INTEGER NOT NULL,
            can_read INTEGER NOT NULL, can_write INTEGER NOT NULL, PRIMARY KEY (token_id, collection_pk));
        CREATE TABLE objects (
            seq INTEGER PRIMARY KEY, collection_pk INTEGER NOT NULL, stix_id TEXT NOT NULL,
            type TEXT NOT NULL, version INTEGER NOT NULL, spec_version TEXT NOT NULL,
            date_added INTEGER NOT NULL, created_by_ref TEXT, markings TEXT, body BLOB NOT NULL,
            is_first INTEGER NOT NULL, is_last INTEGER NOT NULL);
        CREATE UNIQUE INDEX objects_version ON objects (collection_pk, stix_id, version);
        CREATE UNIQUE INDEX objects_added ON objects (collection_pk, date_added);
        CREATE INDEX objects_type_added ON objects (collection_pk, type, date_added);
        CREATE TABLE tombstones (
            collection_pk INTEGER NOT NULL, stix_id TEXT NOT NULL, version INTEGER NOT NULL,
            deleted_at INTEGER NOT NULL);
        CREATE INDEX tombstones_at ON tombstones (collection_pk, deleted_at);
        CREATE TABLE statuses (
            id TEXT PRIMARY KEY, api_root TEXT NOT NULL, token_id TEXT, created_at INTEGER NOT NULL,
            body BLOB NOT NULL);
        CREATE INDEX statuses_created ON statuses (created_at);
        """,
    ),
    (
        2,
        """
        ALTER TABLE organisations ADD COLUMN communities TEXT;
        ALTER TABLE organisations ADD COLUMN client_of TEXT;
        ALTER TABLE tokens ADD COLUMN agreement_id TEXT;
        CREATE TABLE agreements (
            agreement_id TEXT NOT NULL, version INTEGER NOT NULL, partner TEXT NOT NULL,
            body TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT,
            PRIMARY KEY (agreement_id, version));
        CREATE TABLE marking_definitions (
            id TEXT PRIMARY KEY, body BLOB NOT NULL, added_at INTEGER NOT NULL);
        CREATE TABLE tlp_aliases (id TEXT PRIMARY KEY, level INTEGER NOT NULL);
        CREATE TABLE policy_state (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
        INSERT INTO policy_state (id, generation) VALUES (1, 0);
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, principal TEXT,
            body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
        INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '')
        """,
    ),
    (
        3,
        """
        CREATE TABLE fed_partners (name TEXT PRIMARY KEY, config TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE fed_cursors (
            partner TEXT NOT NULL, direction TEXT NOT NULL, local_collection TEXT NOT NULL,
            remote_collection TEXT NOT NULL, position TEXT NOT NULL, updated_at INTEGER NOT NULL,
            PRIMARY KEY (partner, direction, local_collection, remote_collection));
        CREATE TABLE fed_provenance (
            collection_pk INTEGER NOT NULL, stix_id TEXT NOT NULL, version INTEGER NOT NULL,
            partner TEXT NOT NULL, remote_collection TEXT NOT NULL, received_at INTEGER NOT NULL,
            PRIMARY KEY (collection_pk, stix_id, version));
        CREATE INDEX fed_provenance_partner ON fed_provenance (partner, received_at);
        CREATE TABLE fed_quarantine (
            seq INTEGER PRIMARY KEY, partner TEXT NOT NULL, remote_collection TEXT NOT NULL,
            local_collection TEXT NOT NULL, stix_id TEXT, version TEXT, reason TEXT NOT NULL, body BLOB,
            at INTEGER NOT NULL);
        CREATE INDEX fed_quarantine_partner ON fed_quarantine (partner, seq);
        CREATE TABLE fed_status (
            partner TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,
            next_attempt INTEGER NOT NULL, last_attempt INTEGER, last_success INTEGER, last_error TEXT,
            pulled INTEGER NOT NULL, pushed INTEGER NOT NULL, quarantined INTEGER NOT NULL);
        CREATE TABLE fed_lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)
        """,
    ),
    (
        4,
        """
        CREATE TABLE fed_withdrawn (
            collection_pk INTEGER NOT NULL, stix_id TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
            created_by_ref TEXT, markings TEXT, body BLOB NOT NULL, reason TEXT NOT NULL,
            withdrawn_at INTEGER NOT NULL);
        CREATE INDEX fed_withdrawn_at ON fed_withdrawn (collection_pk, withdrawn_at)
        """,
    ),
    (
        5,
        """
        ALTER TABLE fed_withdrawn ADD COLUMN date_added INTEGER
        """,
    ),
    (
        6,
        """
        ALTER TABLE tokens ADD COLUMN expires_at INTEGER
        """,
    ),
    # Step 7: which versions may be the first or last one some reader sees (store/view_edges.py). A single
    # version is both, hence the default; SqlStore._backfill_edges computes objects with several versions.
    (
        7,
        """
        ALTER TABLE objects ADD COLUMN maybe_first INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE objects ADD COLUMN maybe_last INTEGER NOT NULL DEFAULT 1
        """,
    ),
    (
        8,
        """
        ALTER TABLE fed_status ADD COLUMN last_run TEXT
        """,
    ),
    # Step 9: named feed definitions served at /feeds/<name>.<ext> (kizuna/formats/feed_routes.py); a
    # definition's revision changes with every edit, so the feeds' validators (ETags) change with it.
    (
        9,
        """
        CREATE TABLE feeds (
            name TEXT PRIMARY KEY, format TEXT NOT NULL, api_root TEXT NOT NULL, collection_id TEXT NOT NULL,
            options TEXT NOT NULL, created_at INTEGER NOT NULL, revision INTEGER NOT NULL)
        """,
    ),
    # Step 11: the full-text search index, one row per stored version, and its pairs of letters for
    # two-character words (store/search_index.py); existing versions are indexed by SearchIndex.backfill.
    (
        11,
        """
        CREATE VIRTUAL TABLE search_text USING fts5 (text, tokenize = 'trigram');
        CREATE TABLE search_pairs (pair TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (pair, seq)) WITHOUT ROWID;
        CREATE INDEX search_pairs_seq ON search_pairs (seq)
        """,
    ),
    # Step 12: console sign-in sessions (kizuna/web). Only a hash of the session id is stored; a session
    # lives no longer than its token, whose state is checked on every request.
    (
        12,
        """
        CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL, created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL, csrf_secret TEXT NOT NULL, language TEXT NOT NULL);
        CREATE INDEX web_sessions_token ON web_sessions (token_id)
        """,
    ),
    # Step 13: tokens bound to a client certificate (its SHA-256 fingerprint, hex) and rotation: the
    # secret a rotation replaced keeps working until previous_valid_until (core/tokens.py).
    (
        13,
        """
        ALTER TABLE tokens ADD COLUMN cert_sha256 TEXT;
        ALTER TABLE tokens ADD COLUMN previous_secret_hash TEXT;
        ALTER TABLE tokens ADD COLUMN previous_valid_until INTEGER
        """,
    ),
    # Step 14: what a feed needs of each indicator version (store/feed_facts.py), written with the body so a
    # blocklist or RPZ build need not parse it; existing versions by feed_facts.backfill.
    (
        14,
        """
        ALTER TABLE objects ADD COLUMN feed TEXT
        """,
    ),
    # Step 16: the reference index, which relationship and sighting versions point at an object
    # (store/object_refs.py), for the console's object page and graph; existing versions by its backfill.
    (
        16,
        """
        CREATE TABLE object_refs (ref TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ref, seq)) WITHOUT ROWID;
        CREATE INDEX object_refs_seq ON object_refs (seq)
        """,
    ),
    # Step 17: the full-text index costs the POST path less (docs/decisions.md, "Ingest and the search index").
    # * FTS5 merges its segments less eagerly: it writes each transaction's rows as a new segment and, by
    #   default, merges a level as soon as it holds 4 of them, so a stream of 1,000-object POSTs spent more
    #   time rewriting segments than indexing text. At 16 the writer does about a quarter less work per
    #   indexed row (bench/sqlite_floor.py --search-index --automerge) and a query reads a few more segments
    #   (still well under a millisecond). Rows already indexed stay as they are.
    # * New versions' text waits in search_backlog and is indexed after the commit (store/search_index.py);
    #   the table starts empty, since every version stored before this step is already indexed.
    (
        17,
        """
        INSERT INTO search_text (search_text, rank) VALUES ('automerge', 16);
        CREATE TABLE search_backlog (seq INTEGER PRIMARY KEY, text TEXT NOT NULL)
        """,
    ),
    # Step 18: alerts of an operation on its protected assets, judged once as objects arrive (ops/alerts.py)
    # and read by `ops alerts`, the shift report and the console; a cache of what the stored objects say,
    # rebuilt by ops/alerts.py whenever the watchlist changes or an object arrived without being judged.
    (
        18,
        """
        CREATE TABLE ops_alerts (
            operation TEXT NOT NULL, stix_id TEXT NOT NULL, asset_id TEXT NOT NULL, asset TEXT NOT NULL,
            rule_rank INTEGER NOT NULL, rule TEXT NOT NULL, matched TEXT NOT NULL, fuzzer TEXT,
            collection_pk INTEGER NOT NULL, role TEXT NOT NULL, object_type TEXT NOT NULL, object_name TEXT,
            producer TEXT, version INTEGER NOT NULL, date_added INTEGER NOT NULL, raised INTEGER NOT NULL,
            PRIMARY KEY (operation, stix_id, asset));
        CREATE INDEX ops_alerts_added ON ops_alerts (operation, raised, date_added)
        """,
    ),
    # Step 19: what an operation's collections received per minute (counts per role, producer and type;
    # the sightings' counts per indicator, appended: one row per indicator and batch, summed when read), kept
    # as objects arrive so the shift report reads sums instead of objects (ops/activity.py); a cache of the
    # newest stored versions, rebuilt like ops_alerts.
    (
        19,
        """
        CREATE TABLE ops_activity (
            operation TEXT NOT NULL, slot INTEGER NOT NULL, role TEXT NOT NULL, producer TEXT NOT NULL,
            type TEXT NOT NULL, count INTEGER NOT NULL, first INTEGER NOT NULL,
            PRIMARY KEY (operation, slot, role, producer, type)) WITHOUT ROWID;
        CREATE TABLE ops_sighted (
            operation TEXT NOT NULL, slot INTEGER NOT NULL, role TEXT NOT NULL, ref TEXT NOT NULL,
            count INTEGER NOT NULL, objects INTEGER NOT NULL, first INTEGER NOT NULL);
        CREATE INDEX ops_sighted_slot ON ops_sighted (operation, slot)
        """,
    ),
    # Step 20: the dashboard's received counts kept in the store (store/received_groups.py), so that a
    # restarted server does not group every version of the window again on its first board. A cache of
    # what the objects table says: per collection, the groups counted and the watermark they reach
    # (received_marks; ``generation`` lets two processes update it without adding the same versions twice).
    (
        20,
        """
        CREATE TABLE received_marks (
            collection_pk INTEGER NOT NULL, kinds TEXT NOT NULL, since INTEGER NOT NULL, mark INTEGER NOT NULL,
            top_seq INTEGER NOT NULL, deleted_at INTEGER, generation INTEGER NOT NULL,
            PRIMARY KEY (collection_pk, kinds));
        CREATE TABLE received_counts (
            collection_pk INTEGER NOT NULL, kinds TEXT NOT NULL, day INTEGER NOT NULL, producer TEXT NOT NULL,
            markings TEXT NOT NULL, type TEXT NOT NULL, versions INTEGER NOT NULL,
            PRIMARY KEY (collection_pk, kinds, day, producer, markings, type)) WITHOUT ROWID
        """,
    ),
    # Step 21: the shift report counts what the collections received from the objects' own columns when it
    # is read (an indexed range, grouped in SQL), so ingest no longer keeps per-minute counts; the sightings'
    # counts per indicator stay kept as they arrive (their ``count`` is in the body), one row per batch and
    # minute holding that batch's sums as JSON. Both are a cache: the judged-through marks are dropped so the
    # next read rebuilds it (ops/arrivals.py).
    (
        21,
        """
        DROP TABLE ops_activity;
        DROP TABLE ops_sighted;
        CREATE TABLE ops_sighted (
            operation TEXT NOT NULL, slot INTEGER NOT NULL, role TEXT NOT NULL, sums BLOB NOT NULL);
        CREATE INDEX ops_sighted_slot ON ops_sighted (operation, slot);
        DELETE FROM node_settings WHERE key LIKE 'ops:alerts:%'
        """,
    ),
    # Step 22: what each input (a log file, a request body) contributed to a stored sighting
    # (store/sighting_inputs.py), so a sighting stored by matching adds what another input saw in its window
    # and an input matched again replaces its own share instead of counting twice.
    (
        22,
        """
        CREATE TABLE sighting_inputs (
            collection_pk INTEGER NOT NULL, sighting_id TEXT NOT NULL, input TEXT NOT NULL,
            count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
            PRIMARY KEY (collection_pk, sighting_id, input))
        """,
    ),
    # Step 23: TLP:AMBER received from a partner node reaches only this node's organisation and its clients, so
    # AMBER versions are no longer decided by their columns alone (store/view_edges.py): the first/last flags
    # of every object with several versions are computed again (store/sql.py).
    (23, ""),
    # Step 25: translations join the reference index (store/object_refs.py), so the dashboard finds the
    # language-content objects of the reports it lists by their object_ref; existing ones by its backfill.
    (25, ""),
    # Step 26: the full-text index keeps no token positions (FTS5 detail=none): a third less work per indexed
    # row for the search backlog, whose writes share the one write lock with every POST, and a smaller file.
    # A search asks the index for rows holding each trigram of a word and then checks the word itself in the
    # row's text (store/search_index.py); rows indexed before the step are copied across, merge setting kept.
    (
        26,
        """
        CREATE VIRTUAL TABLE search_text_rows USING fts5 (text, tokenize = 'trigram', detail = none);
        INSERT INTO search_text_rows (search_text_rows, rank) VALUES ('automerge', 16);
        INSERT INTO search_text_rows (rowid, text) SELECT rowid, text FROM search_text;
        DROP TABLE search_text;
        ALTER TABLE search_text_rows RENAME TO search_text
        """,
    ),
    # Step 27: the kept copies of deleted versions are looked up by id too: a reference to an object deleted
    # from the collection stays hidden from a reader who could not see it (core/visibility.py). A quarantined
    # object is looked up by partner and id before another copy of it is kept (federation/state.py).
    (27, """
        CREATE INDEX fed_withdrawn_id ON fed_withdrawn (collection_pk, stix_id);
        CREATE INDEX fed_quarantine_id ON fed_quarantine (partner, stix_id)
        """),
    # Step 28: versions whose body embeds references to other objects (a domain's resolves_to_refs, network
    # traffic's src_ref) are flagged, so a reader's copy loses those it may not see without every body being
    # looked through on every read (store/embedded.py); existing versions by its backfill.
    (28, "ALTER TABLE objects ADD COLUMN embeds SMALLINT NOT NULL DEFAULT 0"),
    # Step 29: the object's own markings of a version whose markings column also lists its granular markings,
    # so what left the node is labelled by its object's TLP without the body being read (store/object_markings.py);
    # existing versions by its backfill.
    (29, "ALTER TABLE objects ADD COLUMN object_markings TEXT"),
]
