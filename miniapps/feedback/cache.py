"""Rendered answers (map layers, Open311 listings, dashboards, queue pages) kept while the reports are unchanged.

An answer is keyed by the reports' data version (newest report id, latest ``updated_at``: every filing and
every move of a report changes one of them) and by everything that shaped it (filters, the caller's
units). A stored answer is served until a report changes or it has lived ``ttl`` seconds, whichever is
first: answers that say "overdue" depend on the clock too. Memory is bounded in bytes, least recently
used answers going first. One cache per database engine, so two apps in one process never share answers.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import TLRUCache
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from miniapps.feedback.models import FeedbackReport

MAX_BYTES = 64 * 2**20  # rendered answers kept per process; a 5,000-feature layer is about 2 MB
TTL_SECONDS = 60.0

Version = tuple[Any, Any]


def data_version(session: Session) -> Version:
    """(newest report id, latest update): two index look-ups, changed by every filing and every move."""
    newest, updated = session.exec(select(func.max(FeedbackReport.id), func.max(FeedbackReport.updated_at))).one()
    return newest, updated


class AnswerCache:
    """Bytes rendered from the reports, by (data version, key); bounded in bytes and in age."""

    def __init__(self, max_bytes: int = MAX_BYTES, ttl: float = TTL_SECONDS) -> None:
        self._answers: TLRUCache[Hashable, bytes] = TLRUCache(
            maxsize=max_bytes, ttu=lambda _key, _value, now: now + ttl, getsizeof=len)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; routes run in the thread pool

    def answer(self, session: Session, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The stored answer for ``key`` at the current data version, else ``render()`` stored and returned."""
        versioned = (data_version(session), key)
        with self._lock:
            found = self._answers.get(versioned)
        if found is not None:
            return found
        body = render()
        if len(body) <= self._answers.maxsize:
            with self._lock:
                self._answers[versioned] = body
        return body

    def clear(self) -> None:
        """Forget every stored answer."""
        with self._lock:
            self._answers.clear()


_caches: weakref.WeakKeyDictionary[Engine, AnswerCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def for_engine(engine: Engine) -> AnswerCache:
    """The answer cache of the database behind ``engine``."""
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = AnswerCache()
        return cache
