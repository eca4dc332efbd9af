"""The PostgreSQL pool checks only connections that waited in it, and replaces one that died meanwhile."""

from __future__ import annotations

import time

from sqlalchemy import event, text

from core.db import make_engine


def _driver(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_a_connection_in_steady_use_is_not_pinged_and_a_dead_idle_one_is_replaced(postgres_url: str) -> None:
    engine = make_engine(_driver(postgres_url), pool_size=1, max_overflow=0, ping_after_idle_seconds=0.3)
    backends = []
    checkouts = []
    event.listen(engine, "checkout", lambda *a: checkouts.append(time.monotonic()))
    try:
        for _ in range(5):  # back to back: no idle check, one backend throughout
            with engine.connect() as connection:
                backends.append(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert len(set(backends)) == 1 and len(checkouts) == 5

        # The server ends the pooled connection while it waits (a restart, a proxy's idle timeout).
        with make_engine(_driver(postgres_url)).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backends[0]})
            admin.commit()
        time.sleep(0.5)
        with engine.connect() as connection:  # the check finds it dead: a new connection, no error
            replacement = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert replacement != backends[0]
    finally:
        engine.dispose()


def test_without_the_idle_check_a_dead_connection_fails_the_first_use(postgres_url: str) -> None:
    """What the check prevents: the same sequence with checks switched off (a huge idle threshold) fails."""
    engine = make_engine(_driver(postgres_url), pool_size=1, max_overflow=0, ping_after_idle_seconds=3600)
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with make_engine(_driver(postgres_url)).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        time.sleep(0.2)
        failed = False
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            failed = True
        assert failed
    finally:
        engine.dispose()


def test_a_pinged_connection_comes_out_idle_so_its_isolation_level_can_change(postgres_url: str) -> None:
    """The ping's transaction is ended: an idle-checked connection can be switched to autocommit at once
    (PostgreSQL refuses that "in transaction"; SensorThings answers did so and failed with a 500)."""
    engine = make_engine(_driver(postgres_url), pool_size=1, max_overflow=0, ping_after_idle_seconds=0.1)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        time.sleep(0.3)
        with engine.connect() as connection:  # pinged on checkout
            connection.execution_options(isolation_level="AUTOCOMMIT")
            assert connection.execute(text("SELECT 2")).scalar_one() == 2
    finally:
        engine.dispose()
