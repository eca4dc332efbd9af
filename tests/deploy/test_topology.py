"""The compose topology as plain processes: a migrated PostgreSQL, Redis, two web servers and a push worker.

An operator's notice to a unit, sent through web server A, reaches a resident's WebSocket on web server
B live, is in the resident's inbox read through B, and is pushed to the resident's phone (a loopback
fake FCM) by the push-worker process, while neither web server runs a push worker of its own.
Skipped without PostgreSQL and Redis (SUPERAPP_TEST_DATABASE_URL, SUPERAPP_TEST_REDIS_URL); under
CI=true that skip is a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from core.db import make_engine
from core.units.service import CITY_ID, load_reference_units
from plugins.fakes.firebase import DEFAULT_ACCESS_TOKEN, FakeFcm
from push.models import Device, Platform
from tests.conftest import PG_URL, REDIS_URL, TEST_SECRET, require
from tests.push.conftest import Account, make_account, receive, subscribe

SUPERAPP = Path(sys.executable).with_name("superapp")
ROOT = Path(__file__).resolve().parents[2]
UNIT = "phu-xuan"
DEVICE_TOKEN = "topology-resident-phone"
START_SECONDS = 90  # a deadline, not a timing: a loaded 2-core machine takes 15 s and more per process


@dataclass
class City:
    """The running topology: its database URL, the two web servers and the fake FCM."""

    database_url: str
    web_a: str
    web_b: str
    fcm: FakeFcm


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    require(bool(PG_URL) and bool(REDIS_URL), "PostgreSQL and Redis (SUPERAPP_TEST_DATABASE_URL, SUPERAPP_TEST_REDIS_URL)")
    assert PG_URL
    server = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"superapp_topology_{uuid.uuid4().hex[:10]}"
    maintenance = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)
    finally:
        with maintenance.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()


def _environment(database_url: str, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    assert REDIS_URL
    return {**inherited, "SUPERAPP_DATABASE_URL": database_url, "SUPERAPP_REDIS_URL": REDIS_URL,
            "SUPERAPP_ENV": "test", "SUPERAPP_SECRET_KEY": TEST_SECRET, "SUPERAPP_SCHEDULER_ENABLED": "false",
            "SUPERAPP_LOG_LEVEL": "WARNING", "SUPERAPP_LOG_JSON": "false", "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture
def city(database: str, tmp_path: Path) -> Iterator[City]:
    """Migrate with `superapp db upgrade`, then start web A, web B and `superapp push worker`."""
    migrated = subprocess.run([str(SUPERAPP), "db", "upgrade"], check=False, env=_environment(database), cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    engine = make_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as db:
        load_reference_units(db)  # what `superapp seed demo` does first; the units are reference data
    engine.dispose()

    fcm = FakeFcm(access_token=DEFAULT_ACCESS_TOKEN)
    fcm.start()
    web = _environment(database, SUPERAPP_PUSH_WORKER_ENABLED="false")
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(name: str, command: list[str], env: dict[str, str]) -> None:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            processes.append((subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out,
                                               stderr=subprocess.STDOUT), log))

    ports = [_free_port(), _free_port()]
    try:
        for name, port in zip(("web-a", "web-b"), ports):
            start(name, [str(SUPERAPP), "serve", "--host", "127.0.0.1", "--port", str(port)], web)
        start("push", [sys.executable, "-m", "tests.deploy.push_worker", "--fcm-url", fcm.base_url],
              {**_environment(database), "PYTHONPATH": str(ROOT)})
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, (process, log) in zip(urls, processes):
            _wait_ready(url, process, log)
        yield City(database, urls[0], urls[1], fcm)
    finally:
        for process, _log in processes:
            process.terminate()
        for process, _log in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        fcm.stop()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it (exit -15); the push worker exits 0.
    for process, log in processes:
        assert process.returncode in (0, -signal.SIGTERM), f"{log.name} exited {process.returncode}:\n{log.read_text()}"
    assert not fcm.errors


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{log.name} did not get ready:\n{log.read_text()}")
        time.sleep(0.1)


def _resident_with_a_phone(database_url: str) -> Account:
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    resident = make_account(engine, TEST_SECRET, unit=UNIT)
    with Session(engine) as db:
        db.add(Device(user_id=resident.user_id, token=DEVICE_TOKEN, platform=Platform.android, app_version="1.0"))
        db.commit()
    engine.dispose()
    return resident


def _operator(database_url: str) -> Account:
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    operator = make_account(engine, TEST_SECRET, role="operator", unit=CITY_ID)
    engine.dispose()
    return operator


def test_a_notice_sent_through_a_reaches_a_resident_on_b_and_their_phone_through_the_push_worker(
        city: City, fast_passwords: None) -> None:
    resident, operator = _resident_with_a_phone(city.database_url), _operator(city.database_url)
    from websockets.sync.client import connect

    with connect(city.web_b.replace("http://", "ws://") + "/ws", additional_headers=resident.headers,
                 proxy=None, open_timeout=5) as ws:
        subscribe(ws, f"user:{resident.user_id}", f"unit:{UNIT}")
        sent = httpx.post(city.web_a + "/api/notifications", headers=operator.headers, timeout=10, json={
            "title": {"vi": "Thông báo của phường", "en": "Ward notice"},
            "body": {"vi": "SYNTHETIC Lịch cắt điện ngày mai", "en": "SYNTHETIC Power cut tomorrow"},
            "units": [UNIT]})
        assert sent.status_code == 202, sent.text
        notification_id = sent.json()["notification_id"]

        # Live, on B, through Redis: the event web A published names the notification.
        event = receive(ws, timeout=10)
        assert event["type"] == "event" and event["data"]["notification_id"] == notification_id, event

    inbox = httpx.get(city.web_b + "/api/inbox", headers=resident.headers, timeout=10)
    assert inbox.status_code == 200, inbox.text
    assert [item["notification_id"] for item in inbox.json()["items"]] == [notification_id]

    # Pushed by the push-worker process (the web servers run none): a data message with the id only.
    deadline = time.monotonic() + 15
    while not city.fcm.requests_for(token=DEVICE_TOKEN):
        assert time.monotonic() < deadline, "the push worker sent nothing to the resident's phone"
        time.sleep(0.1)
    [push] = city.fcm.requests_for(token=DEVICE_TOKEN)
    assert push.data["notification_id"] == str(notification_id)
