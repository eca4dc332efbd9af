"""Degrade, don't fail: state shared through Redis falls back to this process while Redis is unreachable.

Rate limits (officials' sign-in, sensor ingest) keep their counts in Redis so every worker sees the same
numbers. When Redis is down, answering 500 would turn a cache outage into a sign-in and ingest outage,
so ``LocalFallback`` sends each call to a local stand-in with the same methods (the in-memory variant of
the same limiter) instead. The first failure is logged as a warning, the return of Redis once more;
calls in between stay quiet. While Redis is away, the shared side is tried again at most every
``retry_seconds``, so a request pays a failed connection attempt at most that often.

What it costs: during an outage each worker counts on its own, starting from zero, so a client spread
over ``N`` workers gets up to ``N`` times the allowance until Redis returns; counts made in memory are
not carried back to Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis cannot be reached" (not "Redis refused the command")."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, OSError]
    try:
        from redis import exceptions as redis_errors

        errors += [redis_errors.ConnectionError, redis_errors.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    try:
        from limits.errors import StorageError

        errors.append(StorageError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class LocalFallback:
    """Calls ``shared``'s methods, or ``local``'s same-named ones while ``shared`` cannot be reached."""

    def __init__(self, shared: Any, local: Any, *, what: str, retry_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._shared = shared
        self._local = local
        self._what = what
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._errors = unreachable_errors()
        self._lock = threading.Lock()
        self._retry_at = 0.0  # while in the future, calls go straight to ``local``
        self.degraded = False

    def __getattr__(self, name: str) -> Any:
        shared = getattr(self._shared, name)
        if not callable(shared):
            return shared
        local = getattr(self._local, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._clock() >= self._retry_at:
                try:
                    result = shared(*args, **kwargs)
                except self._errors as exc:
                    self._went_away(exc)
                else:
                    if self.degraded:
                        self._came_back()
                    return result
            return local(*args, **kwargs)

        call.__name__ = name
        call.__doc__ = getattr(shared, "__doc__", None)
        return call

    def _went_away(self, exc: BaseException) -> None:
        with self._lock:
            self._retry_at = self._clock() + self._retry_seconds
            first = not self.degraded
            self.degraded = True
        if first:
            log.warning("%s: Redis unreachable (%s: %s); counting in this process until it returns",
                        self._what, type(exc).__name__, exc)

    def _came_back(self) -> None:
        with self._lock:
            was, self.degraded = self.degraded, False
        if was:
            log.warning("%s: Redis is back; counting there again", self._what)
