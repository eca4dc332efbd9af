"""Database engine and sessions: SQLite (WAL, foreign keys on) by default, PostgreSQL for scale-out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached; the message names it (without its password)."""


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout on every connection.

    On PostgreSQL, ``pool_size``/``max_overflow`` default to the settings' defaults (the app passes the
    configured ``SUPERAPP_DATABASE_POOL_SIZE``/``_MAX_OVERFLOW``).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, connect_args={"connect_timeout": 5}, **kwargs)


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


def get_session(request: Request) -> Iterator[Session]:
    """A request-scoped session on the app's engine (FastAPI dependency)."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
