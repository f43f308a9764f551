"""Per-key token buckets: a key may burst up to its per-minute allowance, then refills steadily.

Pure logic with an injectable clock, so tests step time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0  # when not allowed: seconds until one token is back
    remaining: int = 0

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``per_minute`` requests per key and minute; 0 disables limiting."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def check(self, key: str, cost: float = 1.0) -> Decision:
        if not self.enabled:
            return Decision(True, remaining=0)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._evict_full(now)
                bucket = self._buckets[key] = _Bucket(self.capacity, now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.refill_per_s)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return Decision(True, remaining=int(bucket.tokens))
            return Decision(False, retry_after_s=(cost - bucket.tokens) / self.refill_per_s, remaining=0)

    def _evict_full(self, now: float) -> None:
        """Forget buckets that have refilled completely: they hold no state worth keeping."""
        full_after = self.capacity / self.refill_per_s
        stale = [k for k, b in self._buckets.items() if now - b.updated >= full_after]
        for k in stale:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # still full: drop the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[: self.max_keys // 2]:
                del self._buckets[k]
