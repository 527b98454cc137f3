"""Node-wide token buckets (store/rate_buckets.py) on both backends: the same answers as a process's
own buckets on the same clock, shared by every store object opened on the same node."""

from __future__ import annotations

import threading

from kizuna.core.limits import RequestLimits, TokenBuckets
from kizuna.store import open_store
from kizuna.store.rate_buckets import SharedBuckets, bucket_rows, shared_bucket_maker


def test_shared_buckets_answer_as_a_process_own_buckets_do(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.migrate()
        shared = SharedBuckets(bucket_rows(store), "t:", rate_per_s=2.0, burst=3)
        local = TokenBuckets(rate_per_s=2.0, burst=3)
        script = [("a", 0.0)] * 4 + [("b", 0.0), ("a", 0.5), ("a", 0.5), ("a", 100.0)]
        assert [shared.take(key, now) for key, now in script] == [local.take(key, now) for key, now in script]
        assert shared.wait("a", 100.0) == local.wait("a", 100.0) is None
        assert shared.wait("never seen", 0.0) is None
    finally:
        store.close()


def test_two_stores_on_one_node_spend_from_one_bucket(store_url: str) -> None:
    """Two store objects stand for two server processes: what one spends, the other cannot."""
    first, second = open_store(store_url), open_store(store_url)
    try:
        first.migrate()
        a = RequestLimits(1.0, 0, "node", shared_bucket_maker(first))  # burst: 4 requests
        b = RequestLimits(1.0, 0, "node", shared_bucket_maker(second))
        answers = [limits.admit_token("tok", 10.0) for limits in (a, b, a, b)]
        assert answers == [None] * 4
        assert a.admit_token("tok", 10.0) == b.admit_token("tok", 10.0) == 1.0
        assert b.admit_address("10.0.0.9", 10.0) is None  # another key, its own bucket
    finally:
        first.close()
        second.close()


def test_concurrent_takes_never_spend_more_than_the_burst(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.migrate()
        buckets = SharedBuckets(bucket_rows(store), "t:", rate_per_s=0.001, burst=10)
        granted: list[bool] = []
        lock = threading.Lock()

        def spend() -> None:
            for _ in range(5):
                answer = buckets.take("busy", 50.0) is None
                with lock:
                    granted.append(answer)

        threads = [threading.Thread(target=spend) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(granted) == 30 and sum(granted) == 10
    finally:
        store.close()


def test_full_buckets_are_purged(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.migrate()
        rows = bucket_rows(store)
        buckets = SharedBuckets(rows, "a:", rate_per_s=1.0, burst=2)
        assert buckets.take("gone", 0.0) is None  # full again one second later
        assert buckets.take("kept", 0.0) is None and buckets.take("kept", 0.0) is None  # full at 2 s
        rows.purge(1.5)
        assert rows.state("a:gone") is None and rows.state("a:kept") is not None
    finally:
        store.close()
