"""The flood map's database types carry its prefix (floodmap_0006 renames the station kind's enum)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from core.app import discover
from core.checks import type_name_findings
from core.db import make_engine
from core.migrate import alembic_config, drift, pending_heads
from tests.conftest import base_settings


def _enum_types(engine: sa.Engine) -> set[str]:
    """The enum type names PostgreSQL knows in this database (none on SQLite)."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as connection:
        return set(connection.scalars(sa.text("SELECT typname FROM pg_type WHERE typtype = 'e'")))


def test_every_builtin_miniapp_names_its_types_with_its_prefix(sqlite_url: str) -> None:
    miniapps = discover(base_settings(database_url=sqlite_url))
    assert "floodmap" in {m.id for m in miniapps}
    assert type_name_findings(miniapps) == []


def test_the_rename_migrates_up_and_down(database_url: str) -> None:
    engine = make_engine(base_settings(database_url=database_url).sqlalchemy_url)
    miniapps = discover(base_settings(database_url=database_url))
    config = alembic_config(engine, miniapps)
    postgres = engine.dialect.name == "postgresql"
    try:
        if postgres:
            assert "floodmap_stationkind" in _enum_types(engine) and "stationkind" not in _enum_types(engine)
        command.downgrade(config, "floodmap@floodmap_0005")
        newest = {h for h in ScriptDirectory.from_config(config).get_heads() if h.startswith("floodmap_")}
        assert pending_heads(engine, miniapps) == newest  # 0006 and what follows it are to apply again
        if postgres:
            assert "stationkind" in _enum_types(engine) and "floodmap_stationkind" not in _enum_types(engine)
    finally:
        command.upgrade(config, "heads")
    assert pending_heads(engine, miniapps) == set()
    assert drift(engine, miniapps) == []
    if postgres:
        assert "floodmap_stationkind" in _enum_types(engine) and "stationkind" not in _enum_types(engine)
    engine.dispose()
