"""A process that parses objects in bulk sets its set-up heap aside from the garbage collector's full walks
(core/bulk_import.py; docs/decisions.md, "The set-up heap is set aside from the garbage collector"). Run in a
process of its own: freezing is for the life of a process, and the test process must keep its collector."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from kizuna.core.bulk_import import set_aside_long_lived
import kizuna.app  # what a server worker has loaded when it sets its heap aside
before = gc.get_freeze_count()
set_aside_long_lived()
frozen = gc.get_freeze_count()
class Cycle:
    pass
for _ in range(1000):  # garbage made afterwards, in cycles: still the collector's to free
    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b
print(json.dumps({"before": before, "frozen": frozen, "young": gc.get_threshold()[0], "freed": gc.collect()}))
"""


def test_the_set_up_heap_is_frozen_and_what_comes_after_is_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(done.stdout)
    assert found["before"] == 0
    assert found["frozen"] > 50_000  # the modules, classes and functions of the app, at least
    assert found["young"] == 10_000
    assert found["freed"] >= 2000  # both objects of every cycle made after the freeze
