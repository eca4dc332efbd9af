"""Realtime fixtures: a host served by uvicorn in a thread (WebSockets as ``superapp serve`` serves them),
accounts with tokens, WebSocket helpers."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session
from websockets.sync.client import ClientConnection, connect

from config import Settings
from core.app import create_app
from core.identity import service
from push.wsprotocol import UVICORN_OPTIONS
from tests.conftest import require

PASSWORD = "Sen-Hue-2025-vang"
_serial = itertools.count(1)


@dataclass
class Account:
    """A signed-in account: its id and one session's access token."""

    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header for this account."""
        return {"Authorization": f"Bearer {self.token}"}


def make_account(engine: Any, secret: str, *, role: str = "resident", unit: str = "phu-xuan") -> Account:
    """A new resident (home ``unit``) or official (``role`` held in ``unit``), signed in once."""
    n = next(_serial)
    with Session(engine, expire_on_commit=False) as db:
        if role == "resident":
            user = service.find_or_create_resident(db, firebase_uid=f"ws-{os.getpid()}-{n}",
                                                   phone=f"+8490{os.getpid() % 1000:03d}{n:05d}", address="127.0.0.1")
            user.home_unit_id = unit
            db.add(user)
            db.commit()
            db.refresh(user)
        else:
            user = service.create_official(db, username=f"ws.{role[:8]}.{os.getpid()}.{n}", display_name=f"Cán bộ {n}",
                                           password=PASSWORD, memberships=[(role, unit)])
        pair = service.start_session(db, secret=secret, user=user, method="test", client="pytest", address="127.0.0.1")
    return Account(pair.user_id, pair.access_token)


@dataclass
class LiveHost:
    """A host served on loopback: its app, ws:// base and helpers that act on its event loop."""

    app: FastAPI
    url: str

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def hub(self) -> Any:
        """The realtime hub."""
        return self.app.state.realtime

    def account(self, role: str = "resident", unit: str = "phu-xuan") -> Account:
        """A new signed-in account on this host's database."""
        return make_account(self.app.state.engine, self.app.state.settings.secret_key, role=role, unit=unit)

    def run(self, coroutine: Any, timeout: float = 10) -> Any:
        """Run ``coroutine`` on the server's event loop (the hub and broker live there)."""
        assert self.hub.loop is not None, "the hub has not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self.hub.loop).result(timeout)

    def publish(self, channel: str, event: dict[str, Any]) -> str:
        """``await app.state.realtime.publish(channel, event)`` from the test thread; returns the id."""
        return self.run(self.hub.publish(channel, event))

    def connect(self, account: Account | None = None, *, query_token: bool = False, **options: Any) -> ClientConnection:
        """A WebSocket client, signed in by header (or ``?token=``)."""
        url, headers = self.ws_url, {}
        if account is not None and query_token:
            url += f"?token={account.token}"
        elif account is not None:
            headers = account.headers
        return connect(url, additional_headers=headers, proxy=None, open_timeout=5, **options)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def receive(ws: ClientConnection, timeout: float = 5.0, *, skip_pings: bool = True) -> dict[str, Any]:
    """The next JSON message (server pings skipped unless asked for)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if not (skip_pings and message.get("type") == "ping"):
            return message


def subscribe(ws: ClientConnection, *channels: str, cursor: dict[str, str] | None = None) -> dict[str, Any]:
    """Send a subscribe message and return the ``subscribed`` reply (errors before it are skipped)."""
    message: dict[str, Any] = {"type": "subscribe", "channels": list(channels)}
    if cursor:
        message["cursor"] = cursor
    ws.send(json.dumps(message))
    while True:
        reply = receive(ws)
        if reply["type"] == "subscribed":
            return reply


def errors_and_reply(ws: ClientConnection, *channels: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Subscribe; return the error messages that came before the ``subscribed`` reply, and the reply."""
    ws.send(json.dumps({"type": "subscribe", "channels": list(channels)}))
    errors = []
    while True:
        reply = receive(ws)
        if reply["type"] == "subscribed":
            return errors, reply
        errors.append(reply)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread, with ``superapp serve``'s WebSocket options."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           **UVICORN_OPTIONS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def make_live(settings: Settings) -> Iterator[Callable[..., LiveHost]]:
    """Serve a host (tweak its hub with keyword arguments) for the test's duration."""
    stack: list[Any] = []

    def make(**hub_options: Any) -> LiveHost:
        app = create_app(settings)
        for name, value in hub_options.items():
            setattr(app.state.realtime, name, value)
        server = serve(app)
        url = server.__enter__()
        stack.append(server)
        live = LiveHost(app, url)
        wait_until(lambda: app.state.realtime.loop is not None)
        return live

    yield make
    for server in reversed(stack):
        server.__exit__(None, None, None)


@pytest.fixture
def live(make_live: Callable[..., LiveHost]) -> LiveHost:
    """A host with default hub settings."""
    return make_live()


# --- A private redis-server, for restarts --------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence, that a test may restart."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.binary
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server (as a crash would) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self, pause: float = 0.5) -> None:
        """Kill, stay down for ``pause`` seconds, start again on the same port (data is gone)."""
        self.stop()
        time.sleep(pause)
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server (skips, or fails under CI, without the binary)."""
    require(shutil.which("redis-server") is not None, "the redis-server binary")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
