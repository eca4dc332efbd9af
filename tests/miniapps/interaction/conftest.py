"""Interaction fixtures: a development host on SQLite and PostgreSQL, and officials of the units the
scenarios need (Phu Vang and Kim Long communes, the Departments of Agriculture and Environment and of
Justice, an operator, an admin), each signed in once."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event
from sqlmodel import Session

from core.app import create_app
from core.identity import passwords, service
from tests.conftest import base_settings

PASSWORD = "Sen-Hue-2025-vang"
API = "/api/miniapps/interaction"
_serial = itertools.count(1)


@dataclass
class Official:
    """A signed-in official: user id, display name and the bearer header."""

    user_id: int
    name: str
    headers: dict[str, str]


@pytest.fixture
def host(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A client of a development host, on SQLite then on PostgreSQL; cheap password hashes."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def official(host: TestClient) -> Callable[[str, str], Official]:
    """Make and sign in a new official holding ``role`` in ``unit``."""

    def make(role: str, unit: str) -> Official:
        n = next(_serial)
        with Session(host.app.state.engine, expire_on_commit=False) as db:
            user = service.create_official(db, username=f"ia.{unit}.{n}", display_name=f"Cán bộ {unit} {n}",
                                           password=PASSWORD, memberships=[(role, unit)])
            pair = service.start_session(db, secret=host.app.state.settings.secret_key, user=user, method="test",
                                         client="pytest", address="127.0.0.1")
        return Official(user.id, user.display_name, {"Authorization": f"Bearer {pair.access_token}"})  # type: ignore[arg-type]

    return make


@pytest.fixture
def phu_vang(official) -> Official:
    """A commune official of Phu Vang."""
    return official("commune_official", "phu-vang")


@pytest.fixture
def kim_long(official) -> Official:
    """A ward official of Kim Long (another unit)."""
    return official("commune_official", "kim-long")


@pytest.fixture
def nnmt(official) -> Official:
    """An official of the Department of Agriculture and Environment (land, environment...)."""
    return official("department_official", "so-nnmt")


@pytest.fixture
def tu_phap(official) -> Official:
    """An official of the Department of Justice (civil status...)."""
    return official("department_official", "so-tu-phap")


@pytest.fixture
def operator(official) -> Official:
    """A city operator."""
    return official("operator", "hue")


@pytest.fixture
def admin(official) -> Official:
    """A city administrator."""
    return official("admin", "hue")


def ask(client: TestClient, who: Official, *, title: str = "Thu hồi đất nông nghiệp làm đường liên thôn",
        body: str = "Xã có thẩm quyền thu hồi đất nông nghiệp để mở đường liên thôn không?", field: str = "land") -> dict:
    """Ask through the API and return the created question (asserting 201)."""
    response = client.post(f"{API}/questions", headers=who.headers, json={"title": title, "body": body, "field": field})
    assert response.status_code == 201, response.text
    return response.json()


def answer(client: TestClient, who: Official, question_id: int, body: str = "Theo Luật Đất đai 2024, ...") -> dict:
    """Answer through the API (asserting 201)."""
    response = client.post(f"{API}/questions/{question_id}/answers", headers=who.headers, json={"body": body})
    assert response.status_code == 201, response.text
    return response.json()


class Statements:
    """Counts the statements run while active, on one connection or (given an engine) any of its connections,
    only those naming one of ``tables`` when given, and the rows they returned. On PostgreSQL they are counted
    at the driver (every psycopg cursor's ``execute``): the search reads its posting lists on a binary cursor of
    its own, below SQLAlchemy's events. Background jobs use other connections."""

    def __init__(self, bind: Connection | Engine, tables: tuple[str, ...] = ()) -> None:
        self.bind, self.tables, self.count, self.rows = bind, tables, 0, 0
        self._postgres = bind.dialect.name == "postgresql"
        self._raw = bind.connection.driver_connection if isinstance(bind, Connection) else None
        self._execute = psycopg.Cursor.execute

    def _counts(self, statement: str) -> bool:
        return not self.tables or any(table in statement for table in self.tables)

    def _seen(self, _conn, _cursor, statement, *_args) -> None:
        self.count += self._counts(statement)

    def __enter__(self) -> Statements:
        if not self._postgres:
            event.listen(self.bind, "before_cursor_execute", self._seen)
            return self
        execute, counter = self._execute, self

        def counting(cursor, query, *args, **kwargs):
            result = execute(cursor, query, *args, **kwargs)
            if (counter._raw is None or cursor.connection is counter._raw) and counter._counts(str(query)):
                counter.count += 1
                counter.rows += max(cursor.rowcount, 0)
            return result

        psycopg.Cursor.execute = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc) -> None:
        if self._postgres:
            psycopg.Cursor.execute = self._execute  # type: ignore[method-assign]
        else:
            event.remove(self.bind, "before_cursor_execute", self._seen)
