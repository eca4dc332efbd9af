"""Identity fixtures: a dev host on SQLite and PostgreSQL and eight personas, each as one session's headers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app
from core.identity import passwords, service
from core.identity.models import User
from tests.conftest import base_settings

# Meets core/identity/passwords.py: 12+ characters, a letter and a digit, not common, no username in it.
PASSWORD = "Sen-Hue-2025-vang"

# name -> (role or "resident", unit: the resident's home unit or the unit the role is held in)
PERSONA_SPECS: dict[str, tuple[str, str]] = {
    "resident_a": ("resident", "phu-xuan"),
    "resident_b": ("resident", "kim-long"),
    "commune_px": ("commune_official", "phu-xuan"),
    "commune_kl": ("commune_official", "kim-long"),
    "department": ("department_official", "so-tu-phap"),
    "operator": ("operator", "hue"),
    "admin": ("admin", "hue"),
}
PERSONAS: tuple[str, ...] = ("anonymous", *PERSONA_SPECS)
PHONE_DIGIT = {"resident_a": 1, "resident_b": 2}
DISPLAY_NAMES = {
    "commune_px": "Nguyễn Thị Phú Xuân", "commune_kl": "Lê Văn Kim Long", "department": "Trần Tư Pháp",
    "operator": "Phạm Vận Hành", "admin": "Hoàng Quản Trị",
}


class Persona(dict):
    """The headers a caller sends (``{}`` for anonymous), with who they are as attributes."""

    def __init__(self, name: str, *, user_id: int | None = None, session_id: str | None = None,
                 access_token: str | None = None, refresh_token: str | None = None,
                 username: str | None = None, display_name: str | None = None) -> None:
        super().__init__({"Authorization": f"Bearer {access_token}"} if access_token else {})
        self.name = name
        self.user_id = user_id
        self.session_id = session_id
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.username = username
        self.password = PASSWORD if username else None
        self.display_name = display_name


@pytest.fixture
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters, for tests that measure who may sign in rather than what a hash costs."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A client of a development host (dev sign-in on) built on SQLite, then on PostgreSQL."""
    settings = base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var")
    with TestClient(create_app(settings)) as client:
        yield client


def _session_for(client: TestClient, db: Session, name: str, user: User) -> Persona:
    pair = service.start_session(db, secret=client.app.state.settings.secret_key, user=user,
                                 method="test", client="pytest", address="127.0.0.1")
    return Persona(name, user_id=pair.user_id, session_id=pair.session_id, access_token=pair.access_token,
                   refresh_token=pair.refresh_token, username=user.username, display_name=user.display_name)


@pytest.fixture
def make_persona(api: TestClient) -> Callable[[str], Persona]:
    """Create a new account for a persona name of PERSONA_SPECS (fresh each call) and sign it in."""
    serial = itertools.count(1)

    def make(name: str) -> Persona:
        if name == "anonymous":
            return Persona("anonymous")
        role, unit = PERSONA_SPECS[name]
        n = next(serial)
        with Session(api.app.state.engine, expire_on_commit=False) as db:
            if role == "resident":
                user = service.find_or_create_resident(
                    db, firebase_uid=f"test-{name}-{n}", phone=f"+84905{PHONE_DIGIT[name]}{n:05d}",
                    address="127.0.0.1")
                user.home_unit_id = unit
                db.add(user)
            else:
                user = service.create_official(
                    db, username=f"{name}.{n}", display_name=f"{DISPLAY_NAMES[name]} {n}", password=PASSWORD,
                    memberships=[(role, unit)])
            return _session_for(api, db, name, user)

    return make


@pytest.fixture
def sign_in_again(api: TestClient) -> Callable[[Persona], Persona]:
    """Open another session for an existing persona's account (a second device; no password hashing)."""

    def again(persona: Persona) -> Persona:
        if persona.user_id is None:
            return Persona(persona.name)
        with Session(api.app.state.engine, expire_on_commit=False) as db:
            user = db.get(User, persona.user_id)
            assert user is not None
            return _session_for(api, db, persona.name, user)

    return again


@pytest.fixture
def anonymous() -> Persona:
    """No credentials at all."""
    return Persona("anonymous")


@pytest.fixture
def resident_a(make_persona: Callable[[str], Persona]) -> Persona:
    """A resident living in Phú Xuân."""
    return make_persona("resident_a")


@pytest.fixture
def resident_b(make_persona: Callable[[str], Persona]) -> Persona:
    """A resident living in Kim Long."""
    return make_persona("resident_b")


@pytest.fixture
def commune_px(make_persona: Callable[[str], Persona]) -> Persona:
    """A commune official of Phú Xuân ward."""
    return make_persona("commune_px")


@pytest.fixture
def commune_kl(make_persona: Callable[[str], Persona]) -> Persona:
    """A commune official of Kim Long ward."""
    return make_persona("commune_kl")


@pytest.fixture
def department(make_persona: Callable[[str], Persona]) -> Persona:
    """A department official of the Department of Justice (so-tu-phap)."""
    return make_persona("department")


@pytest.fixture
def operator(make_persona: Callable[[str], Persona]) -> Persona:
    """An operator of the city."""
    return make_persona("operator")


@pytest.fixture
def admin(make_persona: Callable[[str], Persona]) -> Persona:
    """An administrator of the city."""
    return make_persona("admin")


@pytest.fixture
def personas(anonymous: Persona, resident_a: Persona, resident_b: Persona, commune_px: Persona,
             commune_kl: Persona, department: Persona, operator: Persona, admin: Persona) -> dict[str, Persona]:
    """All eight personas by name, in PERSONAS order."""
    found = {"anonymous": anonymous, "resident_a": resident_a, "resident_b": resident_b,
             "commune_px": commune_px, "commune_kl": commune_kl, "department": department,
             "operator": operator, "admin": admin}
    return {name: found[name] for name in PERSONAS}
