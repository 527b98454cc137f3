"""Token buckets and the request limits built from them, on an explicit clock."""

from __future__ import annotations

from kizuna.core.limits import RequestLimits, TokenBuckets


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate_per_s=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [None, None, None]
    assert buckets.take("a", 0.0) == 1.0  # half a second to the next request, rounded up to a whole second
    assert buckets.take("b", 0.0) is None  # another key has its own bucket
    assert buckets.take("a", 0.5) is None  # one request refilled
    assert buckets.take("a", 0.5) is not None
    assert buckets.take("a", 100.0) is None and buckets.wait("a", 100.0) is None  # never more than the burst


def test_forgotten_keys_start_full_and_the_table_stays_bounded() -> None:
    buckets = TokenBuckets(rate_per_s=0.001, burst=1, max_keys=2)
    for key in ("a", "b", "c"):
        assert buckets.take(key, 0.0) is None
    assert buckets.take("a", 0.0) is None  # "a" was forgotten when "c" came: bounded memory, full again
    assert buckets.take("c", 0.0) is not None


def test_failed_authentication_locks_the_address_out_until_it_refills() -> None:
    limits = RequestLimits(rate_per_s=0, failures_per_minute=2)
    for _ in range(2):
        assert limits.admit_address("10.0.0.1", 0.0) is None
        limits.failed("10.0.0.1", 0.0)
    assert limits.admit_address("10.0.0.1", 1.0) == 29.0
    assert limits.admit_address("10.0.0.2", 1.0) is None
    assert limits.admit_address("10.0.0.1", 31.0) is None
    assert limits.admit_token("any", 0.0) is None  # no request rate configured


def test_settings_cross_to_the_server_processes_unchanged() -> None:
    limits = RequestLimits(rate_per_s=12.5, failures_per_minute=7)
    copy = RequestLimits.from_settings(limits.settings())
    assert copy.settings() == "12.5,7,process" and copy.enabled and copy.throttles
    assert RequestLimits.from_settings("12.5,7").scope == "process"  # what a serve before scopes passed
    off = RequestLimits.from_settings(RequestLimits(0, 0).settings())
    assert not off.enabled and not off.throttles and off.admit_address("x", 0.0) is None
