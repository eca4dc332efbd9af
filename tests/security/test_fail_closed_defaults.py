"""Defaults that fail closed (issue 15): without SUPERAPP_ENV the host is production, refuses the public
placeholder secret and has no development sign-in; the demo commands set dev for themselves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from config import DEFAULT_SECRET_KEY, SettingsError, load_settings
from core.app import create_app
from core.identity import service
from core.identity.models import User, UserKind
from core.identity.tokens import issue_access_token

SUPERAPP = Path(sys.executable).with_name("superapp")


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SUPERAPP_ENV and no SUPERAPP_SECRET_KEY, as on a server nobody configured (and no .env here)."""
    monkeypatch.delenv("SUPERAPP_ENV", raising=False)
    monkeypatch.delenv("SUPERAPP_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_default_environment_refuses_the_public_secret(unconfigured, database_url: str) -> None:
    with pytest.raises(SettingsError, match="SUPERAPP_SECRET_KEY is the built-in default"):
        load_settings(database_url=database_url)
    for env in ("test", "production"):
        with pytest.raises(SettingsError, match="SUPERAPP_SECRET_KEY"):
            load_settings(database_url=database_url, env=env)
    assert load_settings(database_url=database_url, env="dev").secret_key == DEFAULT_SECRET_KEY


def test_a_token_signed_with_the_public_secret_opens_nothing(unconfigured, database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERAPP_SECRET_KEY", "a-real-secret-of-this-deployment-" + "x" * 16)
    settings = load_settings(database_url=database_url)
    assert settings.env == "production"
    app = create_app(settings)
    with Session(app.state.engine, expire_on_commit=False) as db:  # a real, open session to forge a token for
        user = User(kind=UserKind.resident, display_name="Lan", phone="+84905355001")
        db.add(user)
        db.commit()
        pair = service.start_session(db, secret=settings.secret_key, user=user, method="test", client=None,
                                     address=None)
    forged = issue_access_token(secret=DEFAULT_SECRET_KEY, user_id=pair.user_id, session_id=pair.session_id)
    with TestClient(app) as client:
        assert client.get("/api/auth/check", headers={"Authorization": f"Bearer {pair.access_token}"}
                          ).status_code == 204
        answer = client.get("/api/auth/check", headers={"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401 and answer.json()["detail"] == "access token signature is invalid"
        assert client.post("/api/auth/dev/code", json={"phone": "0905111222"}).status_code == 404


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_commands_run_without_any_configuration(database_url: str, tmp_path: Path) -> None:
    """`superapp seed demo` and `superapp serve --demo` set dev for themselves; plain commands refuse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    env.update({"SUPERAPP_DATABASE_URL": database_url, "SUPERAPP_LOG_JSON": "false",
                "SUPERAPP_SCHEDULER_ENABLED": "false", "SUPERAPP_PUSH_WORKER_ENABLED": "false",
                "SUPERAPP_VAR_DIR": str(tmp_path / "var")})
    refused = subprocess.run([str(SUPERAPP), "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "SUPERAPP_SECRET_KEY" in refused.stderr
    seeded = subprocess.run([str(SUPERAPP), "seed", "demo"], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([str(SUPERAPP), "serve", "--demo", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        signed_in = httpx.post(url + "/api/auth/login", json={"username": "operator.demo",
                                                              "password": "hue-demo-2025"}, timeout=30)
        assert signed_in.status_code == 200, signed_in.text
        assert httpx.post(url + "/api/auth/dev/code", json={"phone": "0905111222"}, timeout=30).status_code == 202
    finally:
        server.terminate()
        server.wait(30)
        log.close()
