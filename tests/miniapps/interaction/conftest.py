"""Interaction fixtures: a development host on SQLite and PostgreSQL, and officials of the units the
scenarios need (Phu Vang and Kim Long communes, the Departments of Agriculture and Environment and of
Justice, an operator, an admin), each signed in once."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
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
