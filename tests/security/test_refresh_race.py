"""Two refreshes of one session at once both succeed with the same next refresh token (issue 15); reuse
after the grace window, or after the next token was itself used, still revokes the session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session

from core.app import create_app
from core.identity import service
from core.identity.models import RefreshToken, User, UserKind
from core.identity.tokens import hash_refresh_token
from tests.conftest import base_settings


@pytest.fixture
def host(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var"))) as client:
        yield client


def _signed_in(host: TestClient, n: int = 1) -> service.TokenPair:
    with Session(host.app.state.engine, expire_on_commit=False) as db:
        user = User(kind=UserKind.resident, display_name=f"Cư dân {n}", phone=f"+8490533{n:04d}")
        db.add(user)
        db.commit()
        return service.start_session(db, secret=host.app.state.settings.secret_key, user=user, method="test",
                                     client="pytest", address="127.0.0.1")


def _refresh(host: TestClient, token: str):
    return host.post("/api/auth/refresh", json={"refresh_token": token})


def _at_once(host: TestClient, token: str, n: int) -> list:
    barrier = threading.Barrier(n)
    answers: list = []

    def refresh() -> None:
        barrier.wait()
        answers.append(_refresh(host, token))

    threads = [threading.Thread(target=refresh) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_concurrent_refreshes_both_succeed_with_the_same_token(host: TestClient) -> None:
    for trial in range(5):
        pair = _signed_in(host, trial)
        answers = _at_once(host, pair.refresh_token, 2)
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        first, second = (a.json() for a in answers)
        assert first["refresh_token"] == second["refresh_token"] != pair.refresh_token
        for answer in (first, second):  # both access tokens work: the session was not revoked
            assert host.get("/api/auth/check", headers={"Authorization": f"Bearer {answer['access_token']}"}
                            ).status_code == 204
        following = _refresh(host, first["refresh_token"])
        assert following.status_code == 200, following.text


def test_reuse_after_the_next_token_was_used_revokes_the_session(host: TestClient) -> None:
    pair = _signed_in(host)
    nxt = _refresh(host, pair.refresh_token).json()
    assert _refresh(host, nxt["refresh_token"]).status_code == 200
    stolen = _refresh(host, pair.refresh_token)  # the first token again, after its successor moved on
    assert stolen.status_code == 401 and "revoked" in stolen.json()["detail"]
    assert host.get("/api/auth/check", headers={"Authorization": f"Bearer {nxt['access_token']}"}).status_code == 401


def test_reuse_after_the_grace_window_revokes_the_session(host: TestClient) -> None:
    pair = _signed_in(host)
    nxt = _refresh(host, pair.refresh_token).json()
    with Session(host.app.state.engine) as db:  # the rotation happened longer ago than the grace window
        db.execute(update(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(pair.refresh_token))
                   .values(used_at=service.utcnow() - service.REFRESH_GRACE - timedelta(seconds=1)))
        db.commit()
    late = _refresh(host, pair.refresh_token)
    assert late.status_code == 401 and "revoked" in late.json()["detail"]
    assert _refresh(host, nxt["refresh_token"]).status_code == 401
