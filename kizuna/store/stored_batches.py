"""Every stored version, read in batches along ``seq``: how a schema step fills a new column or index for
the versions stored before it (search text, feed facts, reference index, embedded references).

A batch a statement keeps one transaction's memory flat however large the store, and ``seq`` only grows, so a
step that writes as it reads never sees a row twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

_BATCH: Final = 2000


def stored_batches(cur: Any, columns: str, where: str = "") -> Iterator[list[tuple[Any, ...]]]:
    """Batches of ``SELECT seq, <columns> FROM objects [WHERE <where>]`` in ``seq`` order (seq first in each row)."""
    after = -1
    narrowed = f" AND ({where})" if where else ""
    while True:
        cur.execute(f"SELECT seq, {columns} FROM objects WHERE seq > ?{narrowed} ORDER BY seq LIMIT ?", (after, _BATCH))
        batch = cur.fetchall()
        if not batch:
            return
        after = int(batch[-1][0])
        yield batch
