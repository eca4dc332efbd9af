"""Rotation, reuse detection and revocation across two server processes sharing PostgreSQL and Redis.

The verified-caller cache is set to 30 seconds here, so a token that stops working on the other
process proves the revocation travelled through Redis, not that a cache expired.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session

from core.db import make_engine
from core.identity.service import create_official
from tests.browser import serve_in_processes
from tests.conftest import TEST_SECRET

PASSWORD = "Hue-2025-strong-pw"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_servers(postgres_url: str, redis_url: str, tmp_path) -> Iterator[tuple[str, str]]:
    """Two uvicorn processes serving the same PostgreSQL database and Redis broker."""
    env = {**os.environ, "SUPERAPP_DATABASE_URL": postgres_url, "SUPERAPP_REDIS_URL": redis_url,
           "SUPERAPP_ENV": "test", "SUPERAPP_SECRET_KEY": TEST_SECRET, "SUPERAPP_AUTH_CACHE_SECONDS": "30",
           "SUPERAPP_SCHEDULER_ENABLED": "false", "SUPERAPP_LOG_LEVEL": "WARNING"}
    with serve_in_processes("core.app:create_app_from_env", env, tmp_path) as (a, b):
        yield a, b


def _create(postgres_url: str, role: str, unit: str) -> tuple[str, int]:
    engine = make_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    username = f"{role[:5]}.{uuid.uuid4().hex[:8]}"
    with Session(engine) as db:
        user = create_official(db, username=username, display_name="Trần Văn B", password=PASSWORD,
                               memberships=[(role, unit)])
        user_id = user.id
    engine.dispose()
    return username, user_id


def _login(url: str, username: str) -> dict:
    response = httpx.post(url + "/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _eventually_401(url: str, headers: dict[str, str]) -> int:
    # The broadcast is asynchronous; allow it a moment (far below the 30 s cache).
    for _ in range(50):
        status = httpx.get(url + "/api/me", headers=headers).status_code
        if status == 401:
            return status
        time.sleep(0.05)
    return status


def test_rotation_reuse_and_revocation_across_processes(two_servers, postgres_url) -> None:
    a, b = two_servers
    username, _ = _create(postgres_url, "commune_official", "phu-xuan")

    first = _login(a, username)
    assert httpx.get(b + "/api/me", headers=_bearer(first)).status_code == 200  # B caches the caller

    rotated = httpx.post(b + "/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert httpx.get(a + "/api/me", headers=_bearer(second)).status_code == 200

    # Within the grace window, before its successor is used, the same token is a retry: the same pair.
    retry = httpx.post(a + "/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert retry.status_code == 200 and retry.json()["refresh_token"] == second["refresh_token"]
    third = httpx.post(a + "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()

    # Its successor has been used: presenting the first token again is reuse, and ends the session.
    reuse = httpx.post(a + "/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # B had the session cached for 30 s; the revocation reached it through Redis.
    assert _eventually_401(b, _bearer(third)) == 401


def test_membership_removal_ends_tokens_on_every_process(two_servers, postgres_url) -> None:
    a, b = two_servers
    username, _ = _create(postgres_url, "commune_official", "kim-long")
    admin_name, _ = _create(postgres_url, "admin", "hue")
    official = _login(a, username)
    admin = _login(a, admin_name)
    me = httpx.get(b + "/api/me", headers=_bearer(official)).json()
    assert me["memberships"][0]["unit_id"] == "kim-long"

    removed = httpx.delete(a + f"/api/memberships/{me['memberships'][0]['id']}", headers=_bearer(admin))
    assert removed.status_code == 204
    assert _eventually_401(b, _bearer(official)) == 401
    assert httpx.post(b + "/api/auth/refresh", json={"refresh_token": official["refresh_token"]}).status_code == 401
