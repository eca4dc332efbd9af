"""Sign-in throttling that cannot be turned against the people it protects.

Officials' passwords: each failed sign-in adds to a failure count per account and one per client
address. Past a free allowance every further attempt must wait an exponentially growing delay (capped),
answered 429 with Retry-After; nothing is ever locked for good, so once the delay has passed the right
password works again. A browser or app that signed in to the account before holds a signed device
cookie (OWASP's "device cookies", core/identity/tokens.py) and is not delayed by what other clients did:
it has a failure count of its own, and only when that one runs out does it fall back to the others.

Attempts are reserved atomically before the password is checked (a Lua script on Redis, a lock in
memory), so parallel guesses cannot slip through between a check and a count.

Development sign-in codes: requests per phone number and per address in moving windows.
State lives in Redis when configured (shared by all workers), else in this process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import parse, storage, strategies

from core.fallback import LocalFallback

# Development codes: asked for at most this often per phone number and per address.
CODES_PER_PHONE = parse("5 per hour")
CODES_PER_ADDRESS = parse("20 per hour")
MEMORY_ENTRIES = 100_000  # in-process state is bounded: a flood of distinct names cannot grow it further


@dataclass(frozen=True)
class Backoff:
    """``free`` failures cost nothing; after that each attempt waits ``base * 2**(extra failures)`` up to ``cap``.

    Failures drain away, one per ``leak`` seconds (a leaky bucket), so the typos of a busy office behind one
    address never add up to a delay, while an attacker is held to about one guess per ``leak``.
    """

    free: int
    base: float
    cap: float
    leak: float

    def delay(self, failures: int) -> float:
        """Seconds the next attempt must wait after the last of ``failures`` still-counted failures."""
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2 ** min(failures - self.free, 40))

    def counted(self, failures: float, since_last: float) -> int:
        """Failures still counted ``since_last`` seconds after the last one (a part-drained one counts whole)."""
        return math.ceil(max(0.0, failures - since_last / self.leak) - 1e-9)


@dataclass(frozen=True)
class Throttled:
    """A refused attempt: which count refused it (account, address, device) and for how many seconds."""

    reason: str
    seconds: int


@dataclass(frozen=True)
class Reserved:
    """An attempt let through; ``counts`` are the failure counts including this attempt, per key."""

    keys: tuple[str, ...]
    counts: tuple[int, ...]


# KEYS: one hash {n, last} per count; ARGV: now, then free, base, cap, leak for each key (Backoff's
# arithmetic, in Lua). Refuses (returns the 1-based index of the key and the wait) or counts the
# attempt on every key, each hash expiring once it would have drained.
_RESERVE = """
local now = tonumber(ARGV[1])
local counted = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'n', 'last')
  local last = tonumber(state[2]) or 0
  local free, base, cap, leak = tonumber(ARGV[4*i-2]), tonumber(ARGV[4*i-1]), tonumber(ARGV[4*i]), tonumber(ARGV[4*i+1])
  local n = math.ceil(math.max(0, (tonumber(state[1]) or 0) - (now - last) / leak) - 1e-9)
  counted[i] = n
  if n >= free then
    local wait = last + math.min(cap, base * 2 ^ math.min(n - free, 40)) - now
    if wait > 0 then return {i, tostring(wait)} end
  end
end
for i, key in ipairs(KEYS) do
  counted[i] = counted[i] + 1
  redis.call('HSET', key, 'n', counted[i], 'last', ARGV[1])
  redis.call('PEXPIRE', key, math.ceil(counted[i] * tonumber(ARGV[4*i+1]) * 1000))
end
return {0, counted}
"""
_RELEASE = """
if redis.call('HINCRBY', KEYS[1], 'n', -1) <= 0 then redis.call('DEL', KEYS[1]) end
return 0
"""


class _MemoryCounts:
    """Failure counts in this process (one worker only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[float]] = {}  # key -> [failures, last failure, drained at]
        self._once: dict[str, float] = {}

    def reserve(self, now: float, keys: Sequence[str], policies: Sequence[Backoff]) -> tuple[int, float] | list[int]:
        with self._lock:
            states = []
            for index, (key, policy) in enumerate(zip(keys, policies, strict=True)):
                failures, last, _ = self._counts.get(key, (0, 0.0, 0.0))
                counted = policy.counted(failures, now - last)
                wait = last + policy.delay(counted) - now if counted >= policy.free else 0.0
                if wait > 0:
                    return index, wait
                states.append(counted)
            if len(self._counts) + len(keys) > MEMORY_ENTRIES:
                self._counts = {k: v for k, v in self._counts.items() if v[2] > now}
                if len(self._counts) + len(keys) > MEMORY_ENTRIES:
                    self._counts.clear()
            for key, policy, counted in zip(keys, policies, states, strict=True):
                self._counts[key] = [counted + 1, now, now + (counted + 1) * policy.leak]
            return [c + 1 for c in states]

    def release(self, key: str) -> None:
        with self._lock:
            state = self._counts.get(key)
            if state is not None:
                state[0] -= 1
                if state[0] <= 0:
                    del self._counts[key]

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def once(self, key: str, seconds: float, now: float) -> bool:
        with self._lock:
            if self._once.get(key, 0.0) > now:
                return False
            if len(self._once) > MEMORY_ENTRIES:
                self._once = {k: v for k, v in self._once.items() if v > now}
            self._once[key] = now + seconds
            return True


class _RedisCounts:
    """Failure counts in Redis, shared by every worker; each reservation is one atomic script."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)

    def reserve(self, now: float, keys: Sequence[str], policies: Sequence[Backoff]) -> tuple[int, float] | list[int]:
        args: list[str | int] = [repr(now)]
        for policy in policies:
            args += [policy.free, repr(policy.base), repr(policy.cap), repr(policy.leak)]
        refused, detail = self._reserve(keys=list(keys), args=args)
        if refused:
            return int(refused) - 1, float(detail)
        return [int(n) for n in detail]

    def release(self, key: str) -> None:
        self._release(keys=[key])

    def clear(self, key: str) -> None:
        self._redis.delete(key)

    def once(self, key: str, seconds: float, now: float) -> bool:
        return bool(self._redis.set(key, "1", nx=True, px=max(1, int(seconds * 1000))))



def _code_limiter(url: str, key_prefix: str) -> strategies.MovingWindowRateLimiter:
    """Moving windows for development-code requests, in Redis or in memory."""
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(url, key_prefix=f"{key_prefix}-codes"))


class SignInLimiter:
    """Progressive delays for officials' sign-in and request limits for development codes."""

    def __init__(self, redis_url: str | None = None, *, cap_seconds: float = 900.0, base_seconds: float = 1.0,
                 account_free: int = 5, address_free: int = 20, alert_failures: int = 20,
                 key_prefix: str = "superapp-signin", clock: Callable[[], float] = time.time) -> None:
        # An account forgets one failure per quarter hour, an address (many people) one per three minutes.
        self.account = Backoff(account_free, base_seconds, cap_seconds, leak=900.0)
        self.address = Backoff(address_free, base_seconds, cap_seconds, leak=180.0)
        # A known device has its own allowance: someone who stole the cookie still guesses slowly.
        self.device = Backoff(account_free, base_seconds, cap_seconds, leak=900.0)
        self.alert_failures = alert_failures
        self._prefix = key_prefix
        self._clock = clock
        # With Redis down, sign-in keeps working on counts in this process (core/fallback.py), not 500.
        self._counts = (LocalFallback(_RedisCounts(redis_url), _MemoryCounts(), what="sign-in throttling")
                        if redis_url else _MemoryCounts())
        self._codes = _code_limiter("memory://", key_prefix)
        if redis_url:
            self._codes = LocalFallback(_code_limiter(redis_url, key_prefix), self._codes, what="sign-in code limits")

    def _key(self, kind: str, value: str) -> str:
        return f"{self._prefix}:{kind}:{value}"

    # -- officials' passwords ------------------------------------------------------------------------

    def reserve(self, *, account: str, address: str, device: str | None = None) -> Reserved | Throttled:
        """Count one attempt before the password is checked, or say how long it must wait.

        With ``device`` (a valid device cookie's id for this account) only the device's own count
        applies; once that one is throttled the attempt is treated like any other client's.
        """
        now = self._clock()
        if device is not None:
            key = self._key("device", device)
            outcome = self._counts.reserve(now, [key], [self.device])
            if isinstance(outcome, list):
                return Reserved((key,), tuple(outcome))
        keys = [self._key("account", account.lower()), self._key("address", address)]
        outcome = self._counts.reserve(now, keys, [self.account, self.address])
        if isinstance(outcome, list):
            return Reserved(tuple(keys), tuple(outcome))
        index, wait = outcome
        return Throttled(("account", "address")[index], max(1, math.ceil(wait)))

    def succeeded(self, reserved: Reserved) -> None:
        """The password was right: the account's (or device's) failures are forgotten, and this attempt
        is not counted against the address (other failures from there still are)."""
        for key in reserved.keys:
            if ":address:" in key:
                self._counts.release(key)
            else:
                self._counts.clear(key)

    def alarming(self, reserved: Reserved) -> list[str]:
        """The counts of this failed attempt that just reached the alert level (each at most once an hour)."""
        now = self._clock()
        return [key.split(":", 1)[1] for key, count in zip(reserved.keys, reserved.counts, strict=True)
                if count >= self.alert_failures and self._counts.once(f"{key}:alerted", 3600, now)]

    def notify_operators_now(self) -> bool:
        """True at most once per 15 minutes for the whole city, so an attack is one notice, not thousands."""
        return self._counts.once(self._key("notice", "operators"), 900, self._clock())

    # -- development codes -----------------------------------------------------------------------------

    def code_request(self, *, phone: str, address: str) -> Throttled | None:
        """Count one request for a development code; a Throttled answer when the phone or address asked too often."""
        for reason, item, value in (("phone", CODES_PER_PHONE, phone), ("address", CODES_PER_ADDRESS, address)):
            if not self._codes.hit(item, reason, value):
                stats = self._codes.get_window_stats(item, reason, value)
                return Throttled(reason, max(1, math.ceil(stats.reset_time - time.time())))
        return None
