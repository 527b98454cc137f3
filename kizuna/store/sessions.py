"""Console sign-in sessions as rows (schema step 12), shared by both SQL backends.

A row is keyed by a hash of the session id, so a copy of the database cannot be used to take over a
signed-in browser. What a session may do is decided in ``kizuna.core.sessions``; this only stores it.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    token_id: str
    created_at: int
    expires_at: int
    csrf_secret: str
    language: str


_COLUMNS = "id_hash, token_id, created_at, expires_at, csrf_secret, language"


class SessionRows(abc.ABC):
    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    def create_session(self, session: SessionRecord) -> None:
        with self._write() as cur:
            cur.execute(
                f"INSERT INTO web_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (session.id_hash, session.token_id, session.created_at, session.expires_at,
                 session.csrf_secret, session.language),
            )

    def get_session(self, id_hash: str) -> SessionRecord | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM web_sessions WHERE id_hash = ?", (id_hash,))
            row = cur.fetchone()
        if row is None:
            return None
        return SessionRecord(str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]), str(row[5]))

    def set_session_language(self, id_hash: str, language: str) -> None:
        with self._write() as cur:
            cur.execute("UPDATE web_sessions SET language = ? WHERE id_hash = ?", (language, id_hash))

    def delete_session(self, id_hash: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))

    def delete_sessions_of_token(self, token_id: str) -> int:
        with self._write() as cur:
            cur.execute("DELETE FROM web_sessions WHERE token_id = ?", (token_id,))
            return int(cur.rowcount or 0)

    def purge_sessions(self, expired_before: int) -> int:
        with self._write() as cur:
            cur.execute("DELETE FROM web_sessions WHERE expires_at < ?", (expired_before,))
            return int(cur.rowcount or 0)
