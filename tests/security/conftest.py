"""Security fixtures: the product served by uvicorn in a process of its own, whose peak memory a test reads.

A request's cost is measured as the rise of the server's peak resident set (``VmHWM`` in
``/proc/<pid>/status``) over its resident set just before the request: the peak is reset first by
writing ``5`` to ``/proc/<pid>/clear_refs``. Pillow and zlib allocate outside Python's allocator, so
tracemalloc would not see them; the kernel's count does.
"""

from __future__ import annotations

import io
import itertools
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from sqlmodel import Session

from core.db import make_engine
from core.identity import service
from push.wsprotocol import uvicorn_cli_options
from tests.conftest import TEST_SECRET
from tests.core.identity.conftest import PASSWORD

MIB = 2**20
# The target of issue 15: no single request raises a worker's peak memory by more than this.
REQUEST_BUDGET = 256 * MIB
T = TypeVar("T")
_serial = itertools.count(1)


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":")
            found[name] = int(value.split()[0]) * 1024
    return found


@dataclass
class Served:
    """The product served in a process of its own: its URL, its pid and its database."""

    url: str
    pid: int
    database_url: str

    def engine(self) -> Any:
        """An engine on the served database (for seeding rows and signing people in)."""
        url = self.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return make_engine(url)

    def peak_rise(self, request: Callable[[], T]) -> tuple[T, int]:
        """``request()``'s result and how many bytes the server's peak RSS rose above its RSS before it."""
        before = _status(self.pid)["VmRSS"]
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # peak := current
        result = request()
        rise = _status(self.pid)["VmHWM"] - before
        print(f"[peak RSS] +{rise / MIB:.0f} MiB")  # the figure docs/operations.md quotes (pytest -s)
        return result, rise

    def resident(self, unit: str = "phu-xuan") -> dict[str, str]:
        """A new resident of ``unit``, signed in: the bearer header."""
        n = next(_serial)
        engine = self.engine()
        with Session(engine, expire_on_commit=False) as db:
            user = service.find_or_create_resident(db, firebase_uid=f"sec-{os.getpid()}-{n}",
                                                   phone=f"+8491{os.getpid() % 1000:03d}{n:04d}", address="127.0.0.1")
            user.home_unit_id = unit
            db.add(user)
            db.commit()
            pair = service.start_session(db, secret=TEST_SECRET, user=user, method="test", client="pytest",
                                         address="127.0.0.1")
        engine.dispose()
        return {"Authorization": f"Bearer {pair.access_token}"}

    def official(self, role: str, unit: str) -> dict[str, str]:
        """A new official holding ``role`` in ``unit``, signed in: the bearer header."""
        n = next(_serial)
        engine = self.engine()
        with Session(engine, expire_on_commit=False) as db:
            user = service.create_official(db, username=f"sec.{os.getpid()}.{n}", display_name=f"Cán bộ {n}",
                                           password=PASSWORD, memberships=[(role, unit)])
            pair = service.start_session(db, secret=TEST_SECRET, user=user, method="test", client="pytest",
                                         address="127.0.0.1")
        engine.dispose()
        return {"Authorization": f"Bearer {pair.access_token}"}


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """The product served by one uvicorn process on SQLite, then on PostgreSQL, with feedback categories loaded."""
    from miniapps.feedback.service import load_categories

    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as db:
        load_categories(db)
    engine.dispose()
    root = Path(__file__).resolve().parents[2]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPERAPP_")}
    env.update({"PYTHONPATH": str(root), "SUPERAPP_DATABASE_URL": database_url, "SUPERAPP_ENV": "dev",
                "SUPERAPP_SECRET_KEY": TEST_SECRET, "SUPERAPP_SCHEDULER_ENABLED": "false",
                "SUPERAPP_PUSH_WORKER_ENABLED": "false", "SUPERAPP_LOG_LEVEL": "WARNING",
                "SUPERAPP_LOG_JSON": "false", "SUPERAPP_VAR_DIR": str(tmp_path / "var"),
                "SUPERAPP_LOAD_ENTRY_POINTS": "false"})  # the built-in mini-apps only, whatever is installed
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "core.app:create_app_from_env", "--factory", "--host", "127.0.0.1",
             "--port", str(port), *uvicorn_cli_options(), "--no-access-log"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.05)
        yield Served(url, process.pid, database_url)
    finally:
        process.terminate()
        process.wait(15)


@dataclass
class RawAnswer:
    """What a raw HTTP exchange gave: the status, the body, and how many body bytes were sent before it."""

    status: int
    body: bytes
    sent: int


def raw_post(url: str, path: str, headers: dict[str, str], chunks: Iterable[bytes]) -> RawAnswer:
    """POST ``chunks`` over a plain socket, stopping as soon as the server answers.

    An HTTP client would keep writing a body the server no longer reads and report the broken pipe
    instead of the answer; this one looks for an answer before each chunk.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sent = 0
    try:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                head_part, _, rest = received.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    break
    finally:
        sock.close()
    status_line, _, rest = received.partition(b"\r\n")
    return RawAnswer(int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], sent)


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A PNG of one colour: a few hundred KB however many pixels it holds."""
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else (200, 30, 30, 128)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Driven:
    """An ASGI exchange driven by hand: the status, the body, and how many request bytes the app pulled."""

    status: int
    headers: dict[str, str]
    body: bytes
    consumed: int

    def json(self) -> Any:
        """The body as JSON."""
        import json

        return json.loads(self.body)


async def drive(app: Any, path: str, *, headers: dict[str, str], chunks: Iterable[bytes],
                method: str = "POST") -> Driven:
    """Call ``app`` as a server would, handing it ``chunks`` one ``receive`` at a time, and count what it took."""
    source = iter(chunks)
    consumed = 0
    done = False
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal consumed, done
        if done:
            return {"type": "http.disconnect"}
        chunk = next(source, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
    await app(scope, receive, send)
    return Driven(answer["status"], answer["headers"], answer["body"], consumed)


def zeros(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes of filler in chunks of ``chunk``."""
    block = b"0" * chunk
    sent = 0
    while sent < total:
        part = block[: min(chunk, total - sent)]
        sent += len(part)
        yield part
