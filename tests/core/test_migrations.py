"""Models and migrations agree, on SQLite and on PostgreSQL, for core and every loaded mini-app."""

from core.app import discover
from core.db import make_engine
from core.migrate import drift, pending_heads
from tests.conftest import base_settings


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = make_engine(base_settings(database_url=database_url).sqlalchemy_url)
    miniapps = discover(base_settings(database_url=database_url))
    assert any(m.migrations_dir for m in miniapps), "the sample mini-app's branch should be loaded"
    try:
        assert pending_heads(engine, miniapps) == set()
        assert drift(engine, miniapps) == []
    finally:
        engine.dispose()


def test_drift_is_detected(tmp_path) -> None:
    """The check can fail: a database migrated without the mini-app's branch lacks its table."""
    from core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'partial.db'}"
    engine = make_engine(url)
    upgrade(engine, [])  # core only
    miniapps = discover(base_settings(database_url=url))
    differences = drift(engine, miniapps)
    assert ("add_table", "festival_event") in [(d[0], d[1].name) for d in differences if d[0] == "add_table"]
    # every mini-app's branch is pending, and nothing of core's
    pending = pending_heads(engine, miniapps)
    assert "festival_0001" in pending and not any(head.startswith("core_") for head in pending)
    engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
