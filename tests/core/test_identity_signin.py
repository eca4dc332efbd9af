"""Sign-in for real: Firebase ID tokens through the real firebase-admin code against loopback
certificates, the development code, officials' passwords with lock-out, and token rotation."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app
from core.identity.firebase import FirebaseVerifier
from core.identity.ratelimit import SignInLimiter
from core.identity.service import create_official
from plugins.fakes.firebase import FakeCredential, serve_firebase_certs
from tests.conftest import base_settings

PASSWORD = "Hue-2025-strong-pw"


@pytest.fixture
def firebase() -> Iterator:
    """The loopback Firebase: certificates and accounts:lookup."""
    with serve_firebase_certs() as fake:
        yield fake


@pytest.fixture
def fb_client(firebase, sqlite_url) -> Iterator[TestClient]:
    """A host whose Firebase sign-in points at the loopback project, revocation checks on."""
    app = create_app(base_settings(database_url=sqlite_url, firebase_project_id=firebase.project_id))
    app.state.firebase.close()
    app.state.firebase = FirebaseVerifier(project_id=firebase.project_id, check_revoked=True,
                                          credential=FakeCredential(firebase.project_id))
    with TestClient(app) as client:
        yield client


def test_resident_signs_in_with_a_firebase_id_token(fb_client, firebase) -> None:
    firebase.add_user("uid-lan", "+84905123456")
    token = firebase.mint("uid-lan", "+84905123456")
    first = fb_client.post("/api/auth/firebase", json={"id_token": token})
    assert first.status_code == 200, first.text
    me = fb_client.get("/api/me", headers={"Authorization": f"Bearer {first.json()['access_token']}"}).json()
    assert me["kind"] == "resident" and me["phone"] == "+84905123456"
    again = fb_client.post("/api/auth/firebase", json={"id_token": firebase.mint("uid-lan", "+84905123456")})
    assert again.json()["user_id"] == first.json()["user_id"]


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("expired", "Firebase ID token expired"),
        ("wrong_audience", "Firebase ID token is invalid"),
        ("wrong_issuer", "Firebase ID token is invalid"),
        ("unsigned", "Firebase ID token is invalid"),
        ("tampered", "Firebase ID token is invalid"),
        ("unknown_kid", "Firebase ID token is invalid"),
        ("wrong_key", "Firebase ID token is invalid"),
    ],
)
def test_bad_firebase_tokens_are_401_with_a_reason(fb_client, firebase, variant: str, reason: str) -> None:
    firebase.add_user("uid-x", "+84905000001")
    response = fb_client.post("/api/auth/firebase", json={"id_token": firebase.mint("uid-x", "+84905000001",
                                                                                    variant=variant)})
    assert response.status_code == 401, response.text
    problem = response.json()
    assert problem["detail"].startswith(reason) and problem["field"] == "id_token"
    assert response.headers["content-type"] == "application/problem+json"


def test_revoked_firebase_token_is_refused(fb_client, firebase) -> None:
    firebase.add_user("uid-r", "+84905000002")
    issued = int(time.time()) - 60  # revocation compares whole seconds: issue clearly before it
    token = firebase.mint("uid-r", "+84905000002", iat=issued, auth_time=issued)
    firebase.revoke("uid-r")
    response = fb_client.post("/api/auth/firebase", json={"id_token": token})
    assert response.status_code == 401 and response.json()["detail"] == "Firebase ID token was revoked"


@pytest.mark.parametrize("body", [{"id_token": "not-a-jwt"}, {"id_token": ""}, {}, {"id_token": "a", "x": 1}])
def test_malformed_sign_in_bodies(fb_client, body) -> None:
    response = fb_client.post("/api/auth/firebase", json=body)
    assert response.status_code in (401, 422)
    assert response.json()["field"].endswith(("id_token", "x"))


def test_firebase_not_configured_is_404(client) -> None:
    assert client.post("/api/auth/firebase", json={"id_token": "x"}).status_code == 404


def test_production_refuses_the_emulator_switch(monkeypatch) -> None:
    from config import SettingsError, load_settings

    monkeypatch.setenv("SUPERAPP_ENV", "production")
    monkeypatch.setenv("SUPERAPP_SECRET_KEY", "p" * 40)
    monkeypatch.setenv("SUPERAPP_FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(SettingsError, match="refused in production"):
        load_settings()
    monkeypatch.delenv("SUPERAPP_FIREBASE_AUTH_EMULATOR_HOST")
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(SettingsError, match="refused in production"):
        load_settings()


# --- Development sign-in --------------------------------------------------------------------------


def _code_from_log(caplog) -> str:
    found = re.findall(r"development sign-in code for \+84\d+: (\d{6})", caplog.text)
    assert found, caplog.text
    return found[-1]


def test_dev_sign_in_with_the_code_from_the_log(sqlite_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(base_settings(database_url=sqlite_url, env="dev"))) as client:
        assert client.post("/api/auth/dev/code", json={"phone": "0905 111 222"}).status_code == 202
        code = _code_from_log(caplog)
        wrong = client.post("/api/auth/dev/verify", json={"phone": "0905111222", "code": "000000" if code != "000000" else "111111"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "code"
        ok = client.post("/api/auth/dev/verify", json={"phone": "+84905111222", "code": code})
        assert ok.status_code == 200
        # one-time: the same code does not work twice
        assert client.post("/api/auth/dev/verify", json={"phone": "+84905111222", "code": code}).status_code == 401
        bad_phone = client.post("/api/auth/dev/code", json={"phone": "12345678901"})
        assert bad_phone.status_code == 422 and bad_phone.json()["field"] == "phone"


def test_dev_sign_in_code_allows_five_attempts(sqlite_url, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(base_settings(database_url=sqlite_url, env="dev"))) as client:
        client.post("/api/auth/dev/code", json={"phone": "0905111333"})
        code = _code_from_log(caplog)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            assert client.post("/api/auth/dev/verify", json={"phone": "0905111333", "code": wrong}).status_code == 401
        assert client.post("/api/auth/dev/verify", json={"phone": "0905111333", "code": code}).status_code == 401


def test_dev_sign_in_exists_only_in_dev(client) -> None:
    assert client.post("/api/auth/dev/code", json={"phone": "0905111222"}).status_code == 404


# --- Officials -------------------------------------------------------------------------------------


def _official(app, username: str = "px.nguyen") -> int:
    with Session(app.state.engine) as db:
        return create_official(db, username=username, display_name="Nguyễn Thị Lan", password=PASSWORD,
                               memberships=[("commune_official", "phu-xuan")]).id


def test_delay_after_five_failures_without_enumeration(client) -> None:
    # a minute's first delay, so a slow machine cannot outwait it between two requests
    client.app.state.sign_in_limiter = SignInLimiter(base_seconds=60)
    _official(client.app)
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    wrong = client.post("/api/auth/login", json={"username": "px.nguyen", "password": "x"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"] == "wrong username or password"
    for _ in range(4):
        client.post("/api/auth/login", json={"username": "px.nguyen", "password": "x"})
    locked = client.post("/api/auth/login", json={"username": "px.nguyen", "password": PASSWORD})
    assert locked.status_code == 429
    assert "too many failed sign-ins for this account; try again in" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    # another account from the same address is not locked
    _official(client.app, "kl.tran")
    assert client.post("/api/auth/login", json={"username": "kl.tran", "password": PASSWORD}).status_code == 200


def test_lock_out_is_shared_by_workers_through_redis(sqlite_url, redis_url) -> None:
    import uuid

    name = f"shared.{uuid.uuid4().hex[:8]}"
    settings = base_settings(database_url=sqlite_url, redis_url=redis_url)
    apps = [create_app(settings), create_app(settings)]
    prefix = f"t-{uuid.uuid4().hex[:10]}"  # this test's own keys: the address's failures stay out of other runs
    for app in apps:
        app.state.sign_in_limiter = SignInLimiter(redis_url, key_prefix=prefix, base_seconds=60)
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        _official(one.app, name)
        for worker in (one, two, one, two, one):
            assert worker.post("/api/auth/login", json={"username": name, "password": "x"}).status_code == 401
        assert two.post("/api/auth/login", json={"username": name, "password": PASSWORD}).status_code == 429


def test_refresh_rotation_and_reuse_revokes_the_family(client) -> None:
    _official(client.app)
    first = client.post("/api/auth/login", json={"username": "px.nguyen", "password": PASSWORD}).json()
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    new = second.json()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    # within the grace window the first token only repeats the rotation's answer ...
    again = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 200 and again.json()["refresh_token"] == new["refresh_token"]
    # ... but once the next token was used, the first one is a stolen copy
    new = client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]}).json()
    reuse = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and "revoked" in reuse.json()["detail"]
    # the whole family is gone: the newest access and refresh tokens too
    assert client.get("/api/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401


def test_concurrent_refresh_with_one_token_all_get_the_same_next_token(client) -> None:
    _official(client.app)
    tokens = client.post("/api/auth/login", json={"username": "px.nguyen", "password": PASSWORD}).json()
    results: list = []
    barrier = threading.Barrier(4)

    def refresh() -> None:
        barrier.wait()
        results.append(client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 4
    assert len({r.json()["refresh_token"] for r in results}) == 1  # one rotation; the others got its result


def test_sign_out_everywhere(client) -> None:
    _official(client.app)
    sessions = [client.post("/api/auth/login", json={"username": "px.nguyen", "password": PASSWORD}).json()
                for _ in range(2)]
    headers = [{"Authorization": f"Bearer {s['access_token']}"} for s in sessions]
    assert len(client.get("/api/me/sessions", headers=headers[0]).json()) == 2
    assert client.post("/api/auth/logout-all", headers=headers[0]).status_code == 204
    for h in headers:
        assert client.get("/api/me", headers=h).status_code == 401
    assert client.post("/api/auth/refresh", json={"refresh_token": sessions[1]["refresh_token"]}).status_code == 401


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic abc", "Authorization header must be 'Bearer <token>'"),
        ("Bearer", "Authorization header must be 'Bearer <token>'"),
        ("Bearer a.b.c", "access token is malformed"),
    ],
)
def test_malformed_authorization_is_401_with_reason(client, header: str, reason: str) -> None:
    response = client.get("/api/me", headers={"Authorization": header})
    assert response.status_code == 401 and response.json()["detail"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_and_foreign_access_tokens(client) -> None:
    from datetime import timedelta

    from core.identity.tokens import issue_access_token

    user_id = _official(client.app)
    expired = issue_access_token(secret="test-secret-key-0123456789abcdef", user_id=user_id, session_id="s",
                                 ttl=timedelta(seconds=-5))
    foreign = issue_access_token(secret="another-servers-secret-key-0000000000", user_id=user_id, session_id="s")
    assert client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}).json()["detail"] == "access token expired"
    assert client.get("/api/me", headers={"Authorization": f"Bearer {foreign}"}).json()["detail"] == \
        "access token signature is invalid"


def test_password_rules_name_the_rule(client) -> None:
    from core.identity.service import IdentityError

    with Session(client.app.state.engine) as db:
        for password, rule in [("short1", "at least 12 characters"), ("onlyletterslong", "one letter and one digit"),
                               ("px.nguyen-2025x", "must not contain the username")]:
            with pytest.raises(IdentityError, match=rule):
                create_official(db, username="px.nguyen", display_name="A", password=password,
                                memberships=[("commune_official", "phu-xuan")])
