"""The contract kit as a pytest plugin (entry point ``pytest11: superapp``), loaded by pytest wherever the
host is installed. A mini-app's tests take ``superapp_database_url`` to run once on SQLite and once on
PostgreSQL (a fresh database per test on the server ``SUPERAPP_TEST_DATABASE_URL`` names; skipped without it)::

    from plugins.testing import check_miniapp, miniapp_client, sign_in

    def test_contract(tmp_path, superapp_database_url):
        check_miniapp("festival", tmp_path, superapp_database_url)

    def test_items(superapp_client):
        with superapp_client("festival") as client:
            ...
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

POSTGRES_ENV = "SUPERAPP_TEST_DATABASE_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def superapp_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: SQLite in ``tmp_path``, then a new PostgreSQL database dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kit.db'}"
        return
    server_url = os.environ.get(POSTGRES_ENV)
    if not server_url:
        pytest.skip(f"set {POSTGRES_ENV} (a PostgreSQL maintenance database URL) to run on PostgreSQL")
    from sqlalchemy import create_engine, make_url, text

    server = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"superapp_kit_{uuid.uuid4().hex[:12]}"
    maintenance = create_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)
        with maintenance.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        maintenance.dispose()


@pytest.fixture
def superapp_client(superapp_database_url: str, tmp_path: Path) -> Callable[[str], AbstractContextManager[Any]]:
    """``superapp_client(id)``: a context manager giving a test client of a host serving only that mini-app."""
    from plugins.testing import miniapp_client

    return lambda miniapp_id: miniapp_client(miniapp_id, tmp_path, database_url=superapp_database_url)
