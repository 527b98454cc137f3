"""Rate limits: token buckets per token and per client address, and failed-authentication throttling.

A bucket holds up to ``burst`` requests and refills at ``rate`` a second; a request that finds it empty
is refused with the seconds until one request's worth has refilled (the Retry-After a 429 carries).
By default (``serve --rate-limit-scope node``) the buckets are rows every server process of the node
shares (``store/rate_buckets.py``), so ``serve --workers N``, or several hosts on one PostgreSQL node,
hold a client to the rate once.  With ``--rate-limit-scope process`` they live in the memory of each
process, at no cost per request, and a client that spreads its requests over N processes gets up to N
times the rate.

Failed authentication spends from a much smaller bucket per address (``serve --auth-failures``, per
minute); when it is empty, that address is refused before its token is even looked up, so guessing
tokens is slow and a flood of guesses does not flood the audit log.

Request rates are off unless ``serve --rate-limit`` sets one (a node behind a proxy that limits already
should not count the proxy's address); failed-authentication throttling is on by default.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

#: Default requests a second for each token and each address (``serve --rate-limit``; 0: unlimited).
DEFAULT_RATE_PER_S = 0.0
#: Seconds of the rate a client may spend at once.
BURST_SECONDS = 4.0
#: Failed authentications an address may make in a minute before it is throttled (``serve --auth-failures``).
FAILURES_PER_MINUTE = 60
#: Buckets kept per limiter; the least recently used is forgotten first (a forgotten bucket is full).
MAX_KEYS = 50_000


class TokenBuckets:
    """Named token buckets of one size and rate; thread-safe (Starlette runs sync code in threads)."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and room for one request")
        self.rate = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, since = self._levels.get(key, (self.burst, now))
        return min(self.burst, level + (now - since) * self.rate)

    def _wait(self, level: float) -> float:
        """Seconds until ``level`` reaches one request, rounded up to whole seconds for Retry-After."""
        return float(max(1, math.ceil((1.0 - level) / self.rate)))

    def take(self, key: str, now: float) -> float | None:
        """Spend one request from ``key``'s bucket: None if allowed, else seconds to wait."""
        with self._lock:
            level = self._level(key, now)
            if level < 1.0:
                self._remember(key, level, now)
                return self._wait(level)
            self._remember(key, level - 1.0, now)
            return None

    def wait(self, key: str, now: float) -> float | None:
        """Seconds ``key`` must wait before its next request, or None; spends nothing."""
        with self._lock:
            level = self._level(key, now)
            return None if level >= 1.0 else self._wait(level)

    def _remember(self, key: str, level: float, now: float) -> None:
        self._levels[key] = (level, now)
        self._levels.move_to_end(key)
        while len(self._levels) > self.max_keys:
            self._levels.popitem(last=False)


class Buckets(Protocol):
    """What a limit spends from: ``TokenBuckets`` here, or ``store/rate_buckets.SharedBuckets``."""

    rate: float

    def take(self, key: str, now: float) -> float | None: ...
    def wait(self, key: str, now: float) -> float | None: ...


#: Makes the buckets of one kind of limit: (kind, rate a second, burst) -> buckets.
BucketMaker = Callable[[str, float, float], Buckets]
SCOPES = ("node", "process")


def in_memory(kind: str, rate_per_s: float, burst: float) -> Buckets:
    return TokenBuckets(rate_per_s, burst)


class RequestLimits:
    """The limits a server process applies: per address, per token, and on failed authentication."""

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, failures_per_minute: int = FAILURES_PER_MINUTE,
                 scope: str = "process", buckets: BucketMaker = in_memory) -> None:
        burst = max(1.0, rate_per_s * BURST_SECONDS)
        self.enabled = rate_per_s > 0
        self.scope = scope
        self.per_address = buckets("a:", rate_per_s if self.enabled else 1.0, burst)
        self.per_token = buckets("t:", rate_per_s if self.enabled else 1.0, burst)
        self.throttles = failures_per_minute > 0
        self.failures = buckets("f:", max(1, failures_per_minute) / 60.0, max(1, failures_per_minute))

    @classmethod
    def from_settings(cls, text: str | None, shared: BucketMaker | None = None) -> RequestLimits:
        """The limits ``serve`` passes to its processes as ``RATE,FAILURES,SCOPE`` (see ``settings``);
        ``shared`` makes the node-wide buckets when the scope is ``node``."""
        if not text:
            return cls()
        rate, _, rest = text.partition(",")
        failures, _, scope = rest.partition(",")
        scope = scope or "process"
        maker = shared if scope == "node" and shared is not None else in_memory
        return cls(float(rate), int(failures or FAILURES_PER_MINUTE), scope, maker)

    def settings(self) -> str:
        rate = self.per_address.rate if self.enabled else 0.0
        return f"{rate},{round(self.failures.rate * 60) if self.throttles else 0},{self.scope}"

    def now(self) -> float:
        """The clock the buckets run on: the wall clock every process (and host) shares for node-wide
        buckets, the monotonic one for a process's own."""
        return time.time() if self.scope == "node" else time.monotonic()

    @property
    def shared(self) -> bool:
        """Whether the buckets are node-wide: each check is then a store round trip (run it in a thread)."""
        return self.scope == "node" and (self.enabled or self.throttles)

    def admit_address(self, address: str | None, now: float) -> float | None:
        """Seconds to wait before ``address`` may be served (a failed-auth lockout or its rate), or None."""
        if address is None:
            return None
        throttled = self.failures.wait(address, now) if self.throttles else None
        if throttled is not None:
            return throttled
        return self.per_address.take(address, now) if self.enabled else None

    def admit_token(self, token_id: str, now: float) -> float | None:
        return self.per_token.take(token_id, now) if self.enabled else None

    def failed(self, address: str | None, now: float) -> None:
        if address is not None and self.throttles:
            self.failures.take(address, now)
