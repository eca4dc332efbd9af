"""Database engine and sessions: SQLite (WAL, foreign keys on) by default, PostgreSQL for scale-out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine
from starlette.concurrency import run_in_threadpool


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached; the message names it (without its password)."""


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout on every connection.

    On PostgreSQL, ``pool_size``/``max_overflow`` default to the settings' defaults (the app passes the
    configured ``SUPERAPP_DATABASE_POOL_SIZE``/``_MAX_OVERFLOW``), and connections that waited in the
    pool longer than ``ping_after_idle_seconds`` are checked before use.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    idle_ping = kwargs.pop("ping_after_idle_seconds", PING_AFTER_IDLE_SECONDS)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    engine = create_engine(url, connect_args={"connect_timeout": 5}, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine, idle_ping)
    return engine


# A pooled connection that sat unused this long is checked (``SELECT 1``) before it is handed out; one
# in steady use is not. SQLAlchemy's ``pool_pre_ping`` checks every checkout, a round trip more for
# every request, though a connection broken by a database restart or a proxy's idle timeout is almost
# always one that waited in the pool.
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "superapp.checked_in_at"


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check connections that waited in the pool longer than ``idle_seconds`` as they are checked out."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or in steady use
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            # The ping opened a transaction (DB-API connections are not in autocommit): end it, or the
            # caller finds the connection "in transaction" and cannot set its isolation level.
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another one.
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc


SQLITE_MMAP_BYTES = 8 << 30  # address space only (64-bit); pages are mapped as they are read
SQLITE_CACHE_KIB = 32 << 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map share the OS page cache between the pool's connections instead of copying
    # each page into every connection's own cache; at a million answered questions the full-text index
    # (about 4 GB with its data) is read from there. The per-connection cache stays modest (-N = N KiB).
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def check_reachable(engine: Engine) -> None:
    """Open one connection and run ``SELECT 1``, raising DatabaseUnavailable with a clear message."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot reach the database {safe_url(str(engine.url))}: {reason}"
        ) from None


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A request-scoped session on the app's engine (FastAPI dependency).

    Async so that opening it costs no thread-pool hop (making a session touches no connection): on a
    busy machine each hop waits for a thread to be scheduled, and a sync dependency with ``yield`` took
    two of them per request. Closing goes to the thread pool only when the session still holds a
    connection (a transaction the route left open, which closing rolls back over the network).
    """
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
