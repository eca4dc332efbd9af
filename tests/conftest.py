"""Shared fixtures: a network watchdog, migrated databases (SQLite always, PostgreSQL when configured),
apps built by the factory with test settings, and helpers that skip, or fail under CI, when a real
service is missing."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from config import Settings
from core.app import create_app, discover
from core.db import make_engine
from core.migrate import upgrade
from core.units.service import load_reference_units

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("SUPERAPP_TEST_DATABASE_URL")


def _worker_redis_url(url: str | None) -> str | None:
    """The Redis database of this test process: the configured one, or the next ones for pytest-xdist's
    workers (gw1 takes the number after it), so that each worker's flush and rate-limit counts are its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw") or not worker[2:].isdigit():
        return url
    base, _, number = url.rpartition("/")
    return f"{base}/{(int(number or 0) + int(worker[2:])) % 16}"


REDIS_URL = _worker_redis_url(os.environ.get("SUPERAPP_TEST_REDIS_URL"))
TEST_SECRET = "test-secret-key-0123456789abcdef"
# The settings default to production, which refuses the public placeholder secret: this process, and the
# servers and commands the tests start from its environment, run as the test profile with a test secret
# unless a test says otherwise.
os.environ.setdefault("SUPERAPP_ENV", "test")
os.environ.setdefault("SUPERAPP_SECRET_KEY", TEST_SECRET)


def require(condition: bool, what: str) -> None:
    """Skip when ``what`` is unavailable; under CI=true a missing service fails the test instead."""
    if condition:
        return
    if CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available")


# --- Network watchdog: tests talk only to loopback --------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: object) -> None:
    if not isinstance(address, tuple):
        return  # unix sockets are local
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConnectionRefusedError(f"network watchdog: test tried to reach {host!r}") from None
        return
    if not ip.is_loopback:
        raise ConnectionRefusedError(f"network watchdog: test tried to reach {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def network_watchdog() -> Iterator[None]:
    """Refuse any connection to a non-loopback address for the whole session."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# --- Databases ----------------------------------------------------------------------------------


def base_settings(**overrides: object) -> Settings:
    """Settings for a test host: test env, a fixed secret, no scheduler unless asked."""
    values: dict[str, object] = {
        "env": "test", "secret_key": TEST_SECRET, "scheduler_enabled": False, "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _migrate_and_load(url: str) -> None:
    engine = make_engine(url)
    miniapps = discover(base_settings(database_url=url))
    upgrade(engine, miniapps)
    with Session(engine) as session:
        load_reference_units(session)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the reference units, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate_and_load(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    require(bool(PG_URL), "PostgreSQL (SUPERAPP_TEST_DATABASE_URL)")
    assert PG_URL
    server = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"superapp_test_{uuid.uuid4().hex[:10]}"
    maintenance = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        maintenance.dispose()
        require(False, f"PostgreSQL at {PG_URL} ({exc.__class__.__name__})")
    url = server.set(database=name).render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://", 1)
    _migrate_and_load(url)
    yield url
    with maintenance.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    maintenance.dispose()


REFERENCE_TABLES = {"org_unit", "alembic_version"}


def _truncate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )).scalars().all()
        mutable = [t for t in tables if t not in REFERENCE_TABLES]
        if mutable:
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in mutable) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a copy of the SQLite template and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "superapp.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        yield url
        _truncate(url)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite database for tests that need only one backend."""
    path = tmp_path / "superapp.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """Test settings on SQLite."""
    return base_settings(database_url=sqlite_url, var_dir=tmp_path / "var")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of a host built by the factory, lifespan included."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(autouse=True, scope="session")
def fresh_test_redis() -> None:
    """Start the session with an empty test Redis database.

    Rate limits (sign-in delays, development codes per phone and address) count in Redis for an hour or
    more, so counts left by an earlier run on the same database would refuse this run's requests.
    """
    if REDIS_URL:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.flushdb()
        finally:
            client.close()


@pytest.fixture
def redis_url() -> str:
    """The Redis server for tests of the Redis variants."""
    require(bool(REDIS_URL), "Redis (SUPERAPP_TEST_REDIS_URL)")
    assert REDIS_URL
    return REDIS_URL


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (skips, or fails under CI, when not installed).

    Module scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and asyncio tests in other modules cannot start theirs beside it.
    """
    from tests.browser import launch_chromium

    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The base URL of a host served by uvicorn on loopback, for the browser to load."""
    from tests.browser import serve

    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def page(browser, live_url: str):
    """A fresh browser page at phone width, closed after the test."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=live_url, locale="vi-VN")
    page = context.new_page()
    yield page
    context.close()


# The eight personas and the dev host they sign in to (tests/core/identity/conftest.py), for every test
# that acts as them: the core feed, the mini-apps and the authorisation matrix. Imported last, because
# that module imports base_settings from here.
from tests.core.identity.conftest import (  # noqa: E402, F401
    admin,
    anonymous,
    api,
    commune_kl,
    commune_px,
    department,
    fast_passwords,
    make_persona,
    operator,
    personas,
    resident_a,
    resident_b,
    sign_in_again,
)
