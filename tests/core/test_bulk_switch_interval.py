"""A bulk import shortens Python's switch interval for its length only (docs/decisions.md, "Threads share the GIL
every millisecond during a bulk import"), also when imports overlap in a server's threads."""

from __future__ import annotations

import sys
import threading

from kizuna.core.bulk_import import gil_shared_sooner


def test_overlapping_imports_restore_the_interval_they_found() -> None:
    found = sys.getswitchinterval()
    gate = threading.Barrier(6)
    seen: list[float] = []

    def importer() -> None:
        gate.wait()
        for _ in range(200):
            with gil_shared_sooner():
                seen.append(sys.getswitchinterval())

    threads = [threading.Thread(target=importer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen) == {min(found, 0.001)} and len(seen) == 1200
    assert sys.getswitchinterval() == found
