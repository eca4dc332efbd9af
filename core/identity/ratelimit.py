"""Sign-in rate limits per account and per address, shared across workers when Redis is configured."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

# A locked account opens again when the window slides past the failures.
ACCOUNT_FAILURES = parse("5 per 15 minutes")
ADDRESS_ATTEMPTS = parse("30 per 15 minutes")


class SignInLimiter:
    """Counts sign-in failures per account and attempts per address (moving windows)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._storage = storage.storage_from_string(redis_url or "memory://", key_prefix="superapp-signin")
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)

    def _retry_after(self, item: RateLimitItem, *key: str) -> int:
        stats = self._limiter.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def locked_for(self, *, account: str, address: str) -> tuple[str, int] | None:
        """``(reason, seconds)`` when sign-in is refused right now, else None."""
        if not self._limiter.test(ACCOUNT_FAILURES, "account", account.lower()):
            return "account", self._retry_after(ACCOUNT_FAILURES, "account", account.lower())
        if not self._limiter.test(ADDRESS_ATTEMPTS, "address", address):
            return "address", self._retry_after(ADDRESS_ATTEMPTS, "address", address)
        return None

    def attempt(self, *, address: str) -> None:
        """Count one sign-in attempt from ``address``."""
        self._limiter.hit(ADDRESS_ATTEMPTS, "address", address)

    def failure(self, *, account: str) -> None:
        """Count one failed sign-in for ``account`` (known or not: no enumeration)."""
        self._limiter.hit(ACCOUNT_FAILURES, "account", account.lower())

    def success(self, *, account: str) -> None:
        """A successful sign-in clears the account's failures."""
        self._limiter.clear(ACCOUNT_FAILURES, "account", account.lower())
