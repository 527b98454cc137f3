"""Versioned schema of the PostgreSQL store; append new steps, never edit applied ones."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE node_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE api_roots (
            name TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT,
            max_content_length BIGINT NOT NULL);
        CREATE TABLE collections (
            pk BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            api_root TEXT NOT NULL REFERENCES api_roots(name), title TEXT NOT NULL, description TEXT,
            alias TEXT, media_types TEXT NOT NULL, last_added BIGINT NOT NULL DEFAULT 0,
            UNIQUE (api_root, alias));
        CREATE TABLE organisations (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, country TEXT, identity BYTEA NOT NULL);
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY, organisation_id TEXT NOT NULL REFERENCES organisations(id),
            secret_hash TEXT NOT NULL, label TEXT, created_at BIGINT NOT NULL, revoked_at BIGINT);
        CREATE TABLE grants (
            token_id TEXT NOT NULL REFERENCES tokens(id), collection_pk BIGINT NOT NULL,
            can_read SMALLINT NOT NULL, can_write SMALLINT NOT NULL, PRIMARY KEY (token_id, collection_pk));
        CREATE TABLE objects (
            seq BIGSERIAL PRIMARY KEY, collection_pk BIGINT NOT NULL, stix_id TEXT NOT NULL,
            type TEXT NOT NULL, version BIGINT NOT NULL, spec_version TEXT NOT NULL,
            date_added BIGINT NOT NULL, created_by_ref TEXT, markings TEXT, body BYTEA NOT NULL,
            is_first SMALLINT NOT NULL, is_last SMALLINT NOT NULL);
        CREATE UNIQUE INDEX objects_version ON objects (collection_pk, stix_id, version);
        CREATE UNIQUE INDEX objects_added ON objects (collection_pk, date_added);
        CREATE INDEX objects_type_added ON objects (collection_pk, type, date_added);
        CREATE TABLE tombstones (
            collection_pk BIGINT NOT NULL, stix_id TEXT NOT NULL, version BIGINT NOT NULL,
            deleted_at BIGINT NOT NULL);
        CREATE INDEX tombstones_at ON tombstones (collection_pk, deleted_at);
        CREATE TABLE statuses (
            id TEXT PRIMARY KEY, api_root TEXT NOT NULL, token_id TEXT, created_at BIGINT NOT NULL,
            body BYTEA NOT NULL);
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
            agreement_id TEXT NOT NULL, version BIGINT NOT NULL, partner TEXT NOT NULL,
            body TEXT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT,
            PRIMARY KEY (agreement_id, version));
        CREATE TABLE marking_definitions (
            id TEXT PRIMARY KEY, body BYTEA NOT NULL, added_at BIGINT NOT NULL);
        CREATE TABLE tlp_aliases (id TEXT PRIMARY KEY, level BIGINT NOT NULL);
        CREATE TABLE policy_state (id SMALLINT PRIMARY KEY CHECK (id = 1), generation BIGINT NOT NULL);
        INSERT INTO policy_state (id, generation) VALUES (1, 0);
        CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL, principal TEXT,
            body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE audit_head (
            id SMALLINT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
        INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '')
        """,
    ),
    (
        3,
        """
        CREATE TABLE fed_partners (name TEXT PRIMARY KEY, config TEXT NOT NULL, created_at BIGINT NOT NULL);
        CREATE TABLE fed_cursors (
            partner TEXT NOT NULL, direction TEXT NOT NULL, local_collection TEXT NOT NULL,
            remote_collection TEXT NOT NULL, position TEXT NOT NULL, updated_at BIGINT NOT NULL,
            PRIMARY KEY (partner, direction, local_collection, remote_collection));
        CREATE TABLE fed_provenance (
            collection_pk BIGINT NOT NULL, stix_id TEXT NOT NULL, version BIGINT NOT NULL,
            partner TEXT NOT NULL, remote_collection TEXT NOT NULL, received_at BIGINT NOT NULL,
            PRIMARY KEY (collection_pk, stix_id, version));
        CREATE INDEX fed_provenance_partner ON fed_provenance (partner, received_at);
        CREATE TABLE fed_quarantine (
            seq BIGSERIAL PRIMARY KEY, partner TEXT NOT NULL, remote_collection TEXT NOT NULL,
            local_collection TEXT NOT NULL, stix_id TEXT, version TEXT, reason TEXT NOT NULL, body BYTEA,
            at BIGINT NOT NULL);
        CREATE INDEX fed_quarantine_partner ON fed_quarantine (partner, seq);
        CREATE TABLE fed_status (
            partner TEXT PRIMARY KEY, state TEXT NOT NULL, failures BIGINT NOT NULL,
            next_attempt BIGINT NOT NULL, last_attempt BIGINT, last_success BIGINT, last_error TEXT,
            pulled BIGINT NOT NULL, pushed BIGINT NOT NULL, quarantined BIGINT NOT NULL);
        CREATE TABLE fed_lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)
        """,
    ),
    (
        4,
        """
        CREATE TABLE fed_withdrawn (
            collection_pk BIGINT NOT NULL, stix_id TEXT NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,
            created_by_ref TEXT, markings TEXT, body BYTEA NOT NULL, reason TEXT NOT NULL,
            withdrawn_at BIGINT NOT NULL);
        CREATE INDEX fed_withdrawn_at ON fed_withdrawn (collection_pk, withdrawn_at)
        """,
    ),
    (
        5,
        """
        ALTER TABLE fed_withdrawn ADD COLUMN date_added BIGINT
        """,
    ),
    (
        6,
        """
        ALTER TABLE tokens ADD COLUMN expires_at BIGINT
        """,
    ),
    # Step 7: which versions may be the first or last one some reader sees (store/view_edges.py). A single
    # version is both, hence the default; SqlStore._backfill_edges computes objects with several versions.
    (
        7,
        """
        ALTER TABLE objects ADD COLUMN maybe_first SMALLINT NOT NULL DEFAULT 1;
        ALTER TABLE objects ADD COLUMN maybe_last SMALLINT NOT NULL DEFAULT 1
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
            options TEXT NOT NULL, created_at BIGINT NOT NULL, revision BIGINT NOT NULL)
        """,
    ),
    # Step 11: the full-text search index, one row per stored version, and its pairs of letters for
    # two-character words (store/search_index.py); existing versions are indexed by SearchIndex.backfill.
    (
        11,
        """
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE TABLE search_text (seq BIGINT PRIMARY KEY, text TEXT NOT NULL);
        CREATE INDEX search_text_trigrams ON search_text USING gin (text gin_trgm_ops);
        CREATE TABLE search_pairs (pair TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (pair, seq));
        CREATE INDEX search_pairs_seq ON search_pairs (seq)
        """,
    ),
    # Step 12: console sign-in sessions (kizuna/web). Only a hash of the session id is stored; a session
    # lives no longer than its token, whose state is checked on every request.
    (
        12,
        """
        CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL, created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL, csrf_secret TEXT NOT NULL, language TEXT NOT NULL);
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
        ALTER TABLE tokens ADD COLUMN previous_valid_until BIGINT
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
        CREATE TABLE object_refs (ref TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (ref, seq));
        CREATE INDEX object_refs_seq ON object_refs (seq)
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
            collection_pk BIGINT NOT NULL, role TEXT NOT NULL, object_type TEXT NOT NULL, object_name TEXT,
            producer TEXT, version BIGINT NOT NULL, date_added BIGINT NOT NULL, raised INTEGER NOT NULL,
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
            operation TEXT NOT NULL, slot BIGINT NOT NULL, role TEXT NOT NULL, producer TEXT NOT NULL,
            type TEXT NOT NULL, count BIGINT NOT NULL, first BIGINT NOT NULL,
            PRIMARY KEY (operation, slot, role, producer, type));
        CREATE TABLE ops_sighted (
            operation TEXT NOT NULL, slot BIGINT NOT NULL, role TEXT NOT NULL, ref TEXT NOT NULL,
            count BIGINT NOT NULL, objects BIGINT NOT NULL, first BIGINT NOT NULL);
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
            collection_pk BIGINT NOT NULL, kinds TEXT NOT NULL, since BIGINT NOT NULL, mark BIGINT NOT NULL,
            top_seq BIGINT NOT NULL, deleted_at BIGINT, generation BIGINT NOT NULL,
            PRIMARY KEY (collection_pk, kinds));
        CREATE TABLE received_counts (
            collection_pk BIGINT NOT NULL, kinds TEXT NOT NULL, day BIGINT NOT NULL, producer TEXT NOT NULL,
            markings TEXT NOT NULL, type TEXT NOT NULL, versions BIGINT NOT NULL,
            PRIMARY KEY (collection_pk, kinds, day, producer, markings, type))
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
            operation TEXT NOT NULL, slot BIGINT NOT NULL, role TEXT NOT NULL, sums BYTEA NOT NULL);
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
            collection_pk BIGINT NOT NULL, sighting_id TEXT NOT NULL, input TEXT NOT NULL,
            count BIGINT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
            PRIMARY KEY (collection_pk, sighting_id, input))
        """,
    ),
    # Step 23: TLP:AMBER received from a partner node reaches only this node's organisation and its clients, so
    # AMBER versions are no longer decided by their columns alone (store/view_edges.py): the first/last flags
    # of every object with several versions are computed again (store/sql.py).
    (23, ""),
    # Step 24: new versions' searchable text waits in search_backlog and is moved into the trigram index after
    # the commit, in batches (store/search_index.py): updating the GIN index inside every ingest transaction
    # had halved PostgreSQL's ingest rate (docs/decisions.md, "Ingest and the search index").
    (24, "CREATE TABLE search_backlog (seq BIGINT PRIMARY KEY, text TEXT NOT NULL)"),
    # Step 25: translations join the reference index (store/object_refs.py), so the dashboard finds the
    # language-content objects of the reports it lists by their object_ref; existing ones by its backfill.
    (25, ""),
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
