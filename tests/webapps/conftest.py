"""Fixtures of the web mini-app browser tests: a live host on each database, its people, and the sample
outside mini-app served by its own process on loopback (at ``localhost``, another site than the host's
``127.0.0.1``, as an outside organisation's would be)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service as identity
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD
from tests.webapps.helpers import registration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The live host on SQLite, then on PostgreSQL, without a base map."""
    return base_settings(database_url=database_url, var_dir=tmp_path / "var", map_tile_url="")


@dataclass(frozen=True)
class People:
    """A resident's web session token and the operator's API token."""

    resident_token: str
    resident_id: int
    operator_token: str


@pytest.fixture
def people(settings: Settings) -> People:
    """A Phú Xuân resident signed in on the web and an operator of the city."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            operator = identity.create_official(db, username="ioc.webapps", display_name="Trực IOC",
                                                password=PASSWORD, memberships=[("operator", "hue")])
            resident = identity.find_or_create_resident(db, firebase_uid="web-wa", phone="+84905777001", address=None)
            resident.home_unit_id = "phu-xuan"
            db.add(resident)
            db.commit()
            web = identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                         client="Hue-S web", address="127.0.0.1", web=True)
            api = identity.start_session(db, secret=settings.secret_key, user=operator, method="test",
                                         client="pytest", address="127.0.0.1")
            return People(web.access_token, resident.id or 0, api.access_token)
    finally:
        engine.dispose()


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SampleProcess:
    """The sample's own uvicorn process on a fixed loopback port, which a test may stop and start again."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers (30 s at most)."""
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "tests.webapps.sample.app:from_env", "--factory", "--host",
                 "127.0.0.1", "--port", str(self.port), "--no-access-log"], env=self.env, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/app", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it (the backend is down until ``start``)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@dataclass(frozen=True)
class Sample:
    """The running sample mini-app: its URL, its registered client and its process."""

    url: str
    client_id: str
    client_secret: str
    process: SampleProcess


def register_sample(live_url: str, operator_token: str, webapp_id: str, origin: str, publish: bool = True) -> str:
    """Register the sample through the API, approve and publish it; returns its client secret."""
    headers = {"Authorization": f"Bearer {operator_token}"}
    with httpx.Client(base_url=live_url, headers=headers, timeout=30) as api:
        created = api.post("/api/webapps", json=registration(webapp_id, origin))
        assert created.status_code == 201, created.text
        if publish:
            assert api.post(f"/api/webapps/{webapp_id}/versions/1/review", json={"decision": "approve"}).status_code == 200
            assert api.post(f"/api/webapps/{webapp_id}/versions/1/publish", json={"rollout_percent": 100}).status_code == 200
        return created.json()["client_secret"]


@pytest.fixture
def sample(live_url: str, people: People, tmp_path: Path) -> Iterator[Sample]:
    """The sample, registered and published as ``youth_union``, served by its own uvicorn process."""
    port = free_port()
    origin = f"http://localhost:{port}"
    secret = register_sample(live_url, people.operator_token, "youth_union", origin)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAMPLE_HOST": live_url, "SAMPLE_CLIENT_ID": "youth_union",
           "SAMPLE_CLIENT_SECRET": secret}
    process = SampleProcess(port, env, tmp_path / "sample.log")
    process.start()
    try:
        yield Sample(origin, "youth_union", secret, process)
    finally:
        process.stop()
