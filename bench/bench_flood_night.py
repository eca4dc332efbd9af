"""A flood night, end to end: a level III reading to 10,000 WebSockets and to FCM, under steady HTTP load.

Issue 13, part 4. Target: *from the reading to the last of 10,000 WebSocket deliveries under 2 s at
p99; zero errors.* Also reported: the time to the FCM topic messages (one per flooded unit) at the
loopback fake FCM, and the HTTP load's requests per second, p99 and errors during the night.

The topology, all on this machine:

- a copy of a synthetic city (``python -m bench.city --parts people,floodmap``, generated into
  ``--city`` when missing; every run works on a fresh ``CREATE DATABASE ... TEMPLATE`` copy);
- ``--web`` uvicorn processes (one worker each, with ``superapp serve``'s WebSocket options) on that
  PostgreSQL database and one Redis database (``--redis``), push worker disabled in them. The app is
  ``core.app:create_app_from_env`` plus one bench-only socket, ``/bench/publish``, for the raw hub
  baseline;
- one ``superapp push worker`` process (``tests.deploy.push_worker``: the real command, its FCM pointed
  at the fake) and the HTTP/2 fake FCM (``plugins.fakes.firebase.Http2Fcm``) in a process of its own,
  which records when each topic message arrives;
- ``--clients`` WebSocket clients (bare asyncio protocols in ``--client-procs`` processes, split across
  the web processes), each a resident of one of the 15 most populous units with a token of their own
  (``start_session``, as ``superapp users token`` does), subscribed to ``unit:<home unit>`` and to the
  flood map's channel ``miniapp:floodmap:map``; they answer the hub's heartbeats;
- every measuring station's sensor reporting every ``--report-every`` seconds through the ingest API
  with its key (the city's stations at their last value, spread evenly over the interval);
- steady HTTP load from ``bench.harness.run_load`` (one load-generator process per target, a
  resident's token): the feed and the inbox, and the map layer, spread over the web processes.

How one reading warns 15 units: the bench registers river gauges of its own ("night gauges", Kim
Long's thresholds 1.0 / 2.0 / 3.5 m) whose ``warn_units`` are the 15 units, standing at level II
(3.30 m) as on a flood night when the river has been high for hours. A round is one gauge's sensor
posting 3.52 m (level III, a step the ingest's jump check accepts): one warning for 15 units, so one
notice, 15 unit-channel events and 15 FCM topic messages. Each round uses a fresh gauge (a gauge
stays at level III for the 30-minute hold time, so raising the same one again would not warn), and
the gauge keeps reporting its new level afterwards.

Phases: a warm-up round; ``--rounds`` rounds under HTTP load; then, with the load stopped, rounds
that alternate the same reading (baseline 1: the night without HTTP load) and a raw hub publish of
one small event to the same 15 unit channels (baseline 2: the hub's own fan-out to the same clients,
through Redis). A delivery is a client receiving the warning's ``inbox`` event on its unit channel;
the map channel's ``warning`` message is timed too.

Errors counted: HTTP load errors, sensor posts not accepted, WebSocket errors, drops and duplicate
deliveries, missing deliveries (a client without the round's event after ``--timeout`` s), FCM topic
messages missing or repeated, and tracebacks in the servers' logs.

Run: ``python -m bench.bench_flood_night`` (10,000 clients) or ``--clients 500 --rounds 3`` for a quick
look. A report, not a test: exits 0 whatever the figures, 1 when it could not measure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import (  # at module level: FastAPI resolves the annotation here
    WebSocket,
    WebSocketDisconnect,
)

from bench.bench_push import FakeProcess
from bench.harness import (
    BENCH_SECRET_KEY,
    HOST,
    ROOT,
    BenchError,
    LoadResult,
    LoadSettings,
    RunningServer,
    Server,
    child_env,
    free_port,
    process_cpu_seconds,
    run_load,
    stop_server,
)
from push.wsprotocol import uvicorn_cli_options

TARGET_P99_SECONDS = 2.0
FLOODED_UNITS = 15
MAP_CHANNEL = "miniapp:floodmap:map"
GAUGE_PREFIX = "night-gauge-"
GAUGE_LEVELS = (1.0, 2.0, 3.5)  # Kim Long's alarm levels, metres
HIGH_WATER = 3.30  # level II, where the night gauges stand before their round
LEVEL_III_READING = 3.52  # 0.22 m above: under the 0.25 m the jump check allows within 5 minutes
DEFAULT_CITY = "postgresql://postgres@127.0.0.1:5432/night_city"
DEFAULT_REDIS = "redis://127.0.0.1:6379/8"


# --------------------------------------------------------------------------------------------------
# The web app as served (child process)


def night_app() -> Any:
    """The super-app plus ``/bench/publish``: a socket that publishes one event to several channels."""
    from core.app import create_app_from_env

    app = create_app_from_env()
    hub = app.state.realtime

    @app.websocket("/bench/publish")
    async def publish(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = json.loads(await ws.receive_text())
                for channel in message["channels"]:  # one after another, as the notifier announces a notice
                    await hub.publish(channel, message["event"])
                await ws.send_text("ok")
        except WebSocketDisconnect:
            pass

    return app


# --------------------------------------------------------------------------------------------------
# The fake FCM (child process): Http2Fcm that also notes when each topic message arrived


def _fake_main(tls_dir: str) -> int:
    """Serve the HTTP/2 fake; answer ``topics SINCE`` and ``stats`` lines on stdin; stop at EOF."""
    from plugins.fakes.firebase import Http2Fcm

    class TimedFcm(Http2Fcm):
        """Http2Fcm that keeps the arrival time (``time.monotonic``) of every accepted topic message."""

        def __init__(self, directory: str) -> None:
            super().__init__(directory)
            self.topic_times: dict[str, list[float]] = {}

        def answer(self, path: str, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes, dict[str, str], float]:
            now = time.monotonic()
            status, payload, extra, delay = super().answer(path, headers, body)
            if status == 200 and path.endswith("messages:send"):
                topic = json.loads(body)["message"].get("topic")
                if topic:
                    with self._lock:
                        self.topic_times.setdefault(topic, []).append(now)
            return status, payload, extra, delay

    fake = TimedFcm(tls_dir)
    fake.start()
    print(json.dumps({"url": fake.base_url, "cert": fake.cert_file}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "topics":
            since = float(command[1])
            with fake._lock:
                answer = {t: [x for x in times if x >= since] for t, times in fake.topic_times.items()}
            print(json.dumps({t: times for t, times in answer.items() if times}), flush=True)
        elif command and command[0] == "stats":
            print(json.dumps({**fake.stats(), "errors": len(fake.errors)}), flush=True)
    fake.stop()
    return 0


def fake_fcm_process(tls_dir: Path) -> FakeProcess:
    """The timed fake FCM in a process of its own (``bench_push``'s runner, this module's ``_fake``)."""
    return FakeProcess(tls_dir, module="bench.bench_flood_night")


# --------------------------------------------------------------------------------------------------
# WebSocket clients (child processes)


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask); only short frames are sent: subscribe and pongs."""
    mask, n = os.urandom(4), len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


PONG = json.dumps({"type": "pong"}).encode()


@dataclass
class Book:
    """What the clients of one process saw: arrival times per (kind, id), and everything that went wrong."""

    arrivals: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    other_events: int = 0
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicate_kinds: dict[str, int] = field(default_factory=dict)  # which events came twice: inbox, map, seq
    dropped: int = 0


class NightClient(asyncio.Protocol):
    """A resident's app: handshake with a token, subscribe, note when each warning arrives, answer pings."""

    def __init__(self, port: int, token: str, channels: list[str], book: Book, ready: asyncio.Future[None]) -> None:
        self.port, self.token, self.channels, self.book, self.ready = port, token, channels, book, ready
        self.buffer = b""
        self.upgraded = False
        self.transport: Any = None
        self.seen: set[tuple[str, int]] = set()
        self.leaving = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /ws?token={self.token} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.leaving:
            self.book.dropped += 1
            if not self.ready.done():
                self.ready.set_exception(BenchError(f"connection lost before subscribing: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.book.errors.append(f"handshake refused: {head[:80]!r}")
                self.transport.close()
                return
            self.upgraded, self.buffer = True, rest
            self.transport.write(_masked(0x1, json.dumps({"type": "subscribe", "channels": self.channels}).encode()))
        self._frames(now)

    def _frames(self, now: float) -> None:
        data, pos = self.buffer, 0
        while len(data) - pos >= 2:
            opcode, length, start = data[pos] & 0x0F, data[pos + 1] & 0x7F, pos + 2
            if length == 126:
                if len(data) - pos < 4:
                    break
                length, start = struct.unpack_from("!H", data, pos + 2)[0], pos + 4
            elif length == 127:
                if len(data) - pos < 10:
                    break
                length, start = struct.unpack_from("!Q", data, pos + 2)[0], pos + 10
            if len(data) < start + length:
                break
            payload = data[start:start + length]
            pos = start + length
            if opcode == 0x1:
                self._message(json.loads(payload), now)
            elif opcode == 0x9:
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.book.errors.append(f"closed by the server with {code}")
                self.transport.close()
        self.buffer = data[pos:]

    def _message(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        if kind == "event":
            data = message["data"]
            what = data.get("type")
            key = (("inbox", data["notification_id"]) if what == "inbox" else
                   ("map", data["warning"]["id"]) if what == "warning" else
                   ("seq", data["seq"]) if what == "bench" else None)
            if key is None:
                self.book.other_events += 1  # station updates on the map channel, feed items...
            elif key in self.seen:
                self.book.duplicates += 1
                self.book.duplicate_kinds[key[0]] = self.book.duplicate_kinds.get(key[0], 0) + 1
            else:
                self.seen.add(key)
                self.book.arrivals.setdefault(key, []).append(now)
        elif kind == "ping":
            self.transport.write(_masked(0x1, PONG))
        elif kind == "subscribed":
            if sorted(message["channels"]) != sorted(self.channels):
                self.book.errors.append(f"subscribed to {message['channels']}, asked for {self.channels}")
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            self.book.errors.append(f"hub error: {message.get('code')}: {message.get('detail')}")


def clients_main(spec_path: str) -> None:
    """Open the connections of a spec file, say ``ready``, then answer ``report KIND ID TIMEOUT`` lines."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    spec = json.loads(Path(spec_path).read_text())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        book = Book()
        clients: list[NightClient] = []
        members = spec["clients"]
        for start in range(0, len(members), 100):
            batch = []
            for token, channels in members[start:start + 100]:
                ready = loop.create_future()
                client = NightClient(spec["port"], token, channels, book, ready)
                await loop.create_connection(lambda c=client: c, HOST, spec["port"])
                clients.append(client)
                batch.append(ready)
            await asyncio.wait_for(asyncio.gather(*batch), 120)
        print("ready", len(clients), flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "report":
                key, deadline = (line[1], int(line[2])), time.monotonic() + float(line[3])
                while len(book.arrivals.get(key, ())) < len(clients) and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                print(json.dumps({"times": book.arrivals.pop(key, []), "clients": len(clients),
                                  "errors": book.errors[:5], "error_count": len(book.errors),
                                  "duplicates": book.duplicates, "duplicate_kinds": book.duplicate_kinds,
                                  "dropped": book.dropped,
                                  "other_events": book.other_events}), flush=True)
            elif line[0] == "quit":
                break
        for client in clients:
            client.leaving = True
            client.transport.close()

    asyncio.run(main())


@dataclass
class Clients:
    """The client processes, each connected to one web process."""

    processes: list[subprocess.Popen[str]]
    count: int

    def report(self, kind: str, ident: int, timeout: float) -> dict[str, Any]:
        """Every client's arrival time of (kind, ident), waiting up to ``timeout`` s for all, and the error counts."""
        for proc in self.processes:
            assert proc.stdin is not None
            proc.stdin.write(f"report {kind} {ident} {timeout}\n")
            proc.stdin.flush()
        merged: dict[str, Any] = {"times": [], "errors": [], "error_count": 0, "duplicates": 0, "dropped": 0,
                                  "other_events": 0, "duplicate_kinds": {}}
        for proc in self.processes:
            assert proc.stdout is not None
            answer = json.loads(proc.stdout.readline())
            merged["times"] += answer["times"]
            merged["errors"] += answer["errors"]
            for name in ("error_count", "duplicates", "dropped", "other_events"):
                merged[name] += answer[name]
            for event_kind, count in answer["duplicate_kinds"].items():
                merged["duplicate_kinds"][event_kind] = merged["duplicate_kinds"].get(event_kind, 0) + count
        return merged

    def close(self) -> None:
        """Ask every process to quit, then make sure it did."""
        for proc in self.processes:
            try:
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for proc in self.processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_clients(members: list[tuple[str, list[str], int]], procs: int, workdir: Path) -> Clients:
    """Connect ``(token, channels, port)`` clients over ``procs`` processes (each with one port); return when all are in."""
    ports = sorted({port for _, _, port in members})
    owners = {port: [i for i in range(procs) if ports[i % len(ports)] == port] for port in ports}
    processes, shares = [], []
    for port, indexes in owners.items():
        of_port = [(token, channels) for token, channels, p in members if p == port]
        for k, index in enumerate(indexes):
            mine = of_port[k::len(indexes)]
            spec_path = workdir / f"clients-{index}.json"
            spec_path.write_text(json.dumps({"port": port, "clients": mine}))
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "bench.bench_flood_night", "_clients", str(spec_path)], cwd=ROOT,
                env=child_env({}), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            shares.append(len(mine))
    group = Clients(processes, sum(shares))
    for proc, share in zip(processes, shares):
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line != ["ready", str(share)]:
            group.close()
            raise BenchError(f"clients did not connect (got {line!r})")
    if group.count != len(members):
        group.close()
        raise BenchError(f"{group.count} of {len(members)} clients were given to a process")
    return group


# --------------------------------------------------------------------------------------------------
# The city copy and what the night needs in it


@dataclass
class Night:
    """What the setup prepared: the database, the flooded units, the gauges, the sensors, the tokens."""

    url: str
    units: list[str]
    gauges: list[str]  # sensor codes of the night gauges, in the order their rounds use them
    sensors: dict[str, tuple[str, float]]  # sensor code -> (key, value it reports)
    residents: list[tuple[str, str]]  # (token, home unit) per client
    load_token: str


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _database_exists(url: str) -> bool:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core.db import make_engine

    target = make_url(_sqlalchemy(url))
    server = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with server.connect() as connection:
            return bool(connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                           {"n": target.database}).scalar())
    finally:
        server.dispose()


def ensure_city(url: str, scale: float) -> None:
    """Generate the city (residents, devices, flood map) into ``url`` unless it is there already."""
    if _database_exists(url):
        return
    name = url.rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", HOST, "-U", "postgres", name], check=True)
    print(f"generating the city at scale {scale:g} into {name} ...", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bench.city", "--url", url, "--scale", str(scale),
                           "--parts", "people,floodmap"], check=False, cwd=ROOT, env=child_env({}), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"python -m bench.city failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"city generated in {time.monotonic() - started:.0f} s", flush=True)


def copy_city(template: str) -> str:
    """A fresh copy of the city (CREATE DATABASE ... TEMPLATE), dropping an earlier copy first."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core.db import make_engine

    source = make_url(_sqlalchemy(template))
    copy = f"{source.database}_run"
    server = make_engine(source.set(database="postgres").render_as_string(hide_password=False),
                         isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{source.database}"'))
    finally:
        server.dispose()
    return template.rsplit("/", 1)[0] + "/" + copy


def drop_copy(url: str) -> None:
    """Drop the run's copy of the city."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core.db import make_engine

    target = make_url(_sqlalchemy(url))
    server = make_engine(target.set(database="postgres").render_as_string(hide_password=False),
                         isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        server.dispose()


def prepare_night(url: str, clients: int, gauges: int) -> Night:
    """Pick the 15 flooded units, register the night gauges at level II, mint a token per client."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from bench.city.base import SYNTHETIC
    from bench.city.floodmap import CODE_PREFIX, sensor_key
    from core.db import make_engine
    from core.identity.models import User
    from core.identity.service import start_session
    from core.units.models import OrgUnit
    from miniapps.floodmap.models import (
        FloodDatastream,
        FloodSensor,
        FloodThing,
        StationKind,
    )
    from miniapps.floodmap.service import StationSpec, register_station

    engine = make_engine(_sqlalchemy(url))
    try:
        with Session(engine, expire_on_commit=False) as db:
            residents = (User.kind == "resident", User.is_active)
            units = [u for u, _n in db.execute(
                select(User.home_unit_id, func.count()).where(*residents, User.home_unit_id.is_not(None))
                .group_by(User.home_unit_id).order_by(func.count().desc(), User.home_unit_id).limit(FLOODED_UNITS))]
            if len(units) < FLOODED_UNITS:
                raise BenchError(f"the city has residents in {len(units)} units; the night needs {FLOODED_UNITS}")
            first = db.get(OrgUnit, units[0])
            codes = []
            now = datetime.now(UTC)
            for index in range(gauges):
                code = f"{GAUGE_PREFIX}{index + 1:02d}"
                thing = register_station(db, StationSpec(
                    code, f"{SYNTHETIC} Trạm thủy văn đêm lũ số {index + 1}", StationKind.river_gauge, first.id,
                    (first.lat or 16.46) + 0.001 * index, first.lon or 107.59, f"{SYNTHETIC} {first.id}",
                    warn_units=units, synthetic=True, levels=GAUGE_LEVELS,
                    description=f"{SYNTHETIC} a gauge of the flood-night benchmark"), sensor_key=sensor_key(code))
                # The river has been high for hours: the gauge stands at level II, already announced.
                thing.level, thing.last_value = 2, HIGH_WATER
                thing.last_observed_at, thing.level_since = now - timedelta(seconds=30), now - timedelta(hours=2)
                codes.append(code)
            db.commit()
            sensors = {code: (sensor_key(code), HIGH_WATER) for code in codes}
            for code, value in db.execute(
                    select(FloodSensor.code, FloodThing.last_value)
                    .join(FloodDatastream, FloodDatastream.sensor_id == FloodSensor.id)
                    .join(FloodThing, FloodThing.id == FloodDatastream.thing_id)
                    .where(FloodSensor.code.startswith(CODE_PREFIX))):
                sensors[code] = (sensor_key(code), float(value or 0.0))
            # Clients go round the units; each is a resident of that unit with a session of their own.
            wanted = {unit: len(range(i, clients, FLOODED_UNITS)) for i, unit in enumerate(units)}
            people: dict[str, list[User]] = {}
            for unit, count in wanted.items():
                people[unit] = list(db.scalars(select(User).where(*residents, User.home_unit_id == unit)
                                               .order_by(User.id).limit(count)))
                if len(people[unit]) < count:
                    raise BenchError(f"unit {unit} has {len(people[unit])} residents, the night needs {count}; "
                                     "generate a larger city (--scale)")
            started = time.monotonic()
            minted: list[tuple[str, str]] = []
            for i in range(clients):
                unit = units[i % FLOODED_UNITS]
                user = people[unit][i // FLOODED_UNITS]
                pair = start_session(db, secret=BENCH_SECRET_KEY, user=user, method="cli",
                                     client="bench_flood_night", address=None)
                minted.append((pair.access_token, unit))
            print(f"{clients} residents signed in ({time.monotonic() - started:.0f} s)", flush=True)
            load_user = db.scalars(select(User).where(*residents, User.home_unit_id == units[0])
                                   .order_by(User.id.desc()).limit(1)).one()
            load_token = start_session(db, secret=BENCH_SECRET_KEY, user=load_user, method="cli",
                                       client="bench_flood_night load", address=None).access_token
    finally:
        engine.dispose()
    return Night(url, units, codes, sensors, minted, load_token)


def warning_of(url: str, gauge: str, timeout: float = 10.0) -> tuple[int, int]:
    """(warning id, notification id) of the warning the gauge's level III reading issued."""
    from sqlalchemy import select
    from sqlmodel import Session

    from core.db import make_engine
    from miniapps.floodmap.models import FloodThing, FloodWarning

    engine = make_engine(_sqlalchemy(url))
    deadline = time.monotonic() + timeout
    try:
        while True:
            with Session(engine) as db:
                row = db.execute(select(FloodWarning.id, FloodWarning.notification_id)
                                 .join(FloodThing, FloodThing.id == FloodWarning.thing_id)
                                 .where(FloodThing.code == gauge, FloodWarning.level == 3)).first()
            if row is not None and row[1] is not None:
                return row[0], row[1]
            if time.monotonic() > deadline:
                raise BenchError(f"no level III warning with a notification for {gauge}")
            time.sleep(0.05)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Process:
    """A started child: its process, log and (for web servers) port."""

    label: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0


def _server_env(night: Night, redis: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return child_env({"SUPERAPP_DATABASE_URL": night.url, "SUPERAPP_REDIS_URL": redis, "SUPERAPP_ENV": "test",
                      "SUPERAPP_SECRET_KEY": BENCH_SECRET_KEY, "SUPERAPP_LOG_LEVEL": "WARNING",
                      "SUPERAPP_LOG_JSON": "false", "SUPERAPP_SCHEDULER_ENABLED": "false",
                      "PYTHONUNBUFFERED": "1", **(extra or {})})


def _wait_ready(process: Process, url: str, seconds: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise BenchError(f"{process.label} exited with {process.proc.returncode}:\n"
                             f"{process.log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{process.label} did not answer {url}")


@contextmanager
def web_servers(night: Night, redis: str, count: int, workdir: Path) -> Iterator[list[Process]]:
    """``count`` web processes (uvicorn, one worker, no push worker), stopped on exit."""
    env = _server_env(night, redis, {"SUPERAPP_PUSH_WORKER_ENABLED": "false"})
    started: list[Process] = []
    try:
        for index in range(count):
            label, port = f"web-{chr(ord('a') + index)}", free_port()
            log = workdir / f"{label}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "bench.bench_flood_night:night_app", "--factory",
                     "--host", HOST, "--port", str(port), "--workers", "1", *uvicorn_cli_options(),
                     "--ws-max-size", "65536", "--backlog", "4096", "--log-level", "warning", "--no-access-log",
                     "--app-dir", str(ROOT)], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
            started.append(Process(label, proc, log, port))
        for process in started:
            _wait_ready(process, f"http://{HOST}:{process.port}/readyz")
        yield started
    finally:
        for process in started:
            stop_server(process.proc)


@contextmanager
def push_worker(night: Night, redis: str, fake: FakeProcess, workdir: Path) -> Iterator[Process]:
    """``superapp push worker`` with FCM pointed at the fake (``tests.deploy.push_worker``), stopped on exit."""
    log = workdir / "push-worker.log"
    env = _server_env(night, redis, {"SSL_CERT_FILE": fake.cert})
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.deploy.push_worker", "--fcm-url", fake.url],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Process("push-worker", proc, log)
    finally:
        stop_server(proc)


def log_problems(processes: list[Process]) -> list[str]:
    """Tracebacks and ERROR lines in the servers' logs (each one is an error of the night)."""
    found = []
    for process in processes:
        for line in process.log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback") or re.search(r"\bERROR\b", line):
                found.append(f"{process.label}: {line[:200]}")
    return found


# --------------------------------------------------------------------------------------------------
# Sensors and HTTP load


class Sensors(threading.Thread):
    """Every sensor posts one reading every ``every`` s, spread evenly, round-robin over the web processes."""

    def __init__(self, night: Night, webs: list[Process], every: float) -> None:
        super().__init__(daemon=True, name="sensors")
        self.values = {code: value for code, (_key, value) in night.sensors.items()}
        self.keys = {code: key for code, (key, _value) in night.sensors.items()}
        self.webs, self.every = webs, every
        self.stopping = threading.Event()
        self.posted = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()  # one reading at a time per gauge: a round's post and the steady one

    def post(self, client: Any, code: str, value: float, web: Process) -> dict[str, Any] | None:
        """One reading now; returns the ingest's answer, or None after noting the error."""
        body = {"readings": [{"time": datetime.now(UTC).isoformat(), "value": value}]}
        try:
            answer = client.post(f"http://{HOST}:{web.port}/api/miniapps/floodmap/ingest/{code}", json=body,
                                 headers={"X-Sensor-Key": self.keys[code]}, timeout=30)
        except Exception as exc:  # noqa: BLE001 - every failure of a sensor is an error of the night
            self.errors.append(f"{code}: {type(exc).__name__}: {exc}")
            return None
        if answer.status_code != 200 or answer.json().get("accepted") != 1:
            self.errors.append(f"{code}: {answer.status_code} {answer.text[:200]}")
            return None
        return answer.json()

    def run(self) -> None:
        import httpx

        codes = sorted(self.values)
        with httpx.Client() as client:
            turn = 0
            while not self.stopping.is_set():
                for code in codes:
                    started = time.monotonic()
                    with self.lock:
                        value = self.values[code]
                    if self.post(client, code, value, self.webs[turn % len(self.webs)]) is not None:
                        self.posted += 1
                    turn += 1
                    if self.stopping.wait(max(0.0, self.every / len(codes) - (time.monotonic() - started))):
                        return


def _loadgen_servers(webs: list[Process]) -> list[RunningServer]:
    server = Server(name="night", app="bench.bench_flood_night:night_app", factory=True)
    return [RunningServer(server=server, port=w.port, pid=w.proc.pid, env={}, workdir=w.log.parent) for w in webs]


LOAD_TARGETS = (
    ("feed", "/api/feed?limit=20"),
    ("inbox", "/api/inbox"),
    ("map layer", "/api/miniapps/floodmap/stations.geojson"),
)


# --------------------------------------------------------------------------------------------------
# Rounds


@dataclass
class Round:
    """One level III reading (or one raw hub publish) and what followed it, in seconds from the post."""

    kind: str  # "loaded", "quiet" or "hub"
    post: float = 0.0  # the ingest (or publish) answered
    first_ws: float = float("inf")
    median_ws: float = float("inf")
    last_ws: float = float("inf")
    delivered: int = 0
    map_last: float = float("inf")
    map_delivered: int = 0
    fcm_first: float = float("inf")
    fcm_last: float = float("inf")
    fcm_topics: int = 0
    fcm_repeats: int = 0
    problems: list[str] = field(default_factory=list)


def reading_round(kind: str, gauge: str, night: Night, sensors: Sensors, web: Process, clients: Clients,
                  fake: FakeProcess, timeout: float, http: Any) -> Round:
    """Post the gauge's level III reading and time the warning to every client and to the fake FCM."""
    result = Round(kind)
    with sensors.lock:
        started = time.monotonic()
        answer = sensors.post(http, gauge, LEVEL_III_READING, web)
        result.post = time.monotonic() - started
        sensors.values[gauge] = LEVEL_III_READING  # the sensor keeps reporting the high water
    if answer is None or [s["change"] for s in answer["stations"]] != [{"from": 2, "to": 3, "reason": "threshold"}]:
        raise BenchError(f"{gauge}: the level III reading did not raise the gauge to III: {answer}")
    warning_id, notification_id = warning_of(night.url, gauge)
    inbox = clients.report("inbox", notification_id, timeout)
    times = sorted(t - started for t in inbox["times"])
    result.delivered = len(times)
    if times:
        result.first_ws, result.median_ws, result.last_ws = times[0], statistics.median(times), times[-1]
    live_map = clients.report("map", warning_id, 5.0)
    result.map_delivered = len(live_map["times"])
    result.map_last = max((t - started for t in live_map["times"]), default=float("inf"))
    deadline = time.monotonic() + timeout
    wanted = {f"unit_{u}" for u in night.units}
    while True:
        topics = fake.ask(f"topics {started}")
        if wanted <= topics.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    arrivals = [t - started for name in wanted for t in topics.get(name, [])[:1]]
    result.fcm_topics = len(arrivals)
    result.fcm_repeats = sum(max(0, len(times) - 1) for name, times in topics.items())
    if arrivals:
        result.fcm_first, result.fcm_last = min(arrivals), max(arrivals)
    _note_problems(result, inbox, clients.count, "inbox event")
    if result.map_delivered != clients.count:
        result.problems.append(f"map warning reached {result.map_delivered} of {clients.count} clients")
    if result.fcm_topics != FLOODED_UNITS:
        result.problems.append(f"{result.fcm_topics} of {FLOODED_UNITS} FCM topic messages arrived")
    if result.fcm_repeats:
        result.problems.append(f"{result.fcm_repeats} FCM topic messages sent more than once")
    return result


def hub_round(seq: int, night: Night, publisher: Any, clients: Clients, timeout: float) -> Round:
    """Baseline: one small event published raw on the hub to the same 15 unit channels."""
    result = Round("hub")
    started = time.monotonic()
    publisher.send(json.dumps({"channels": [f"unit:{u}" for u in night.units], "event": {"type": "bench", "seq": seq}}))
    publisher.recv(timeout=30)
    result.post = time.monotonic() - started
    answer = clients.report("seq", seq, timeout)
    times = sorted(t - started for t in answer["times"])
    result.delivered = len(times)
    if times:
        result.first_ws, result.median_ws, result.last_ws = times[0], statistics.median(times), times[-1]
    _note_problems(result, answer, clients.count, "hub event")
    return result


def _note_problems(result: Round, answer: dict[str, Any], expected: int, what: str) -> None:
    if result.delivered != expected:
        result.problems.append(f"{what} reached {result.delivered} of {expected} clients")
    if answer["duplicates"]:
        result.problems.append(f"{answer['duplicates']} duplicate deliveries so far {answer['duplicate_kinds']}")
    if answer["dropped"]:
        result.problems.append(f"{answer['dropped']} connections dropped so far")
    if answer["error_count"]:
        result.problems.append(f"{answer['error_count']} WebSocket errors so far: {answer['errors'][:3]}")


# --------------------------------------------------------------------------------------------------
# The driver


def run(args: argparse.Namespace) -> int:
    """Prepare the city, start the topology, connect the clients, play the night, print the report."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.clients + 512
    if hard < needed:
        print(f"error: open-file limit {hard} is below the {needed} the night needs; raise `ulimit -Hn`",
              file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children (servers, clients) inherit it
    from websockets.sync.client import connect

    gauges = 1 + args.rounds + args.quiet_rounds
    ensure_city(args.city, args.scale)
    url = copy_city(args.city)
    night = prepare_night(url, args.clients, gauges)
    with tempfile.TemporaryDirectory(prefix="bench-night-") as tmp, ExitStack() as stack:
        if not os.environ.get("BENCH_NIGHT_KEEP"):
            stack.callback(drop_copy, url)
        workdir = Path(os.environ.get("BENCH_NIGHT_KEEP") or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        fake = fake_fcm_process(workdir / "tls")
        stack.callback(fake.close)
        worker = stack.enter_context(push_worker(night, args.redis, fake, workdir))
        webs = stack.enter_context(web_servers(night, args.redis, args.web, workdir))
        print(f"topology up: {len(webs)} web processes, a push worker, the fake FCM; database {url.rsplit('/', 1)[1]}, "
              f"Redis {args.redis}", flush=True)
        started = time.monotonic()
        members = [(token, [f"unit:{unit}", MAP_CHANNEL], webs[i % len(webs)].port)
                   for i, (token, unit) in enumerate(night.residents)]
        clients = start_clients(members, args.client_procs, workdir)
        stack.callback(clients.close)
        print(f"{clients.count} clients connected and subscribed in {time.monotonic() - started:.0f} s", flush=True)
        sensors = Sensors(night, webs, args.report_every)
        sensors.start()
        stack.callback(sensors.stopping.set)
        publisher = stack.enter_context(connect(f"ws://{HOST}:{webs[0].port}/bench/publish", proxy=None))
        import httpx

        http = stack.enter_context(httpx.Client())
        gauge_order = iter(night.gauges)
        results: list[Round] = []

        def play(kind: str, number: int) -> None:
            web = webs[number % len(webs)]
            result = reading_round(kind, next(gauge_order), night, sensors, web, clients, fake, args.timeout, http)
            results.append(result)
            print(f"{kind} round {number}: post {result.post * 1000:.0f} ms, last WebSocket "
                  f"{result.last_ws * 1000:.0f} ms ({result.delivered}/{clients.count}), last FCM topic "
                  f"{result.fcm_last * 1000:.0f} ms ({result.fcm_topics}/{FLOODED_UNITS})"
                  + (f"; {'; '.join(result.problems)}" if result.problems else ""), flush=True)

        time.sleep(args.report_every)  # a full sensor cycle before anything is timed
        play("warm-up", 0)
        results.clear()
        # The night under load: the HTTP load runs for the whole of the loaded rounds.
        servers = _loadgen_servers(webs)
        load_seconds = args.rounds * args.round_every + 2.0
        settings = LoadSettings(seconds=load_seconds, warmup=args.warmup, concurrency=args.concurrency,
                                client="asyncio")
        headers = {"Authorization": f"Bearer {night.load_token}", "Accept-Encoding": "gzip"}
        pool = stack.enter_context(ThreadPoolExecutor(len(LOAD_TARGETS)))
        loads: dict[str, Future[LoadResult]] = {
            label: pool.submit(run_load, servers[n % len(servers)], path, headers, settings)
            for n, (label, path) in enumerate(LOAD_TARGETS)}
        cpu_before = {w.label: process_cpu_seconds(w.proc.pid) or 0.0 for w in webs}
        time.sleep(args.warmup + 1.0)
        loaded_started = time.monotonic()
        for number in range(1, args.rounds + 1):
            slot = loaded_started + (number - 1) * args.round_every
            time.sleep(max(0.0, slot - time.monotonic()))
            play("loaded", number)
        loaded_seconds = time.monotonic() - loaded_started
        cpu_loaded = {w.label: ((process_cpu_seconds(w.proc.pid) or 0.0) - cpu_before[w.label]) / loaded_seconds
                      for w in webs}
        load_results = {label: future.result() for label, future in loads.items()}
        time.sleep(2.0)
        # Baselines, with the load stopped: the same reading, and a raw hub publish, alternating.
        for number in range(1, args.quiet_rounds + 1):
            for kind in (("quiet", "hub") if number % 2 else ("hub", "quiet")):
                if kind == "quiet":
                    play("quiet", number)
                else:
                    result = hub_round(number, night, publisher, clients, args.timeout)
                    results.append(result)
                    print(f"hub round {number}: last WebSocket {result.last_ws * 1000:.0f} ms "
                          f"({result.delivered}/{clients.count})", flush=True)
                time.sleep(args.pause)
        sensors.stopping.set()
        sensors.join(30)
        fcm_stats = fake.ask("stats")
        problems = log_problems([*webs, worker])
        if worker.proc.poll() is not None:
            problems.append(f"the push worker exited with {worker.proc.returncode}")
        report(args, results, load_results, cpu_loaded, sensors, fcm_stats, problems)
    return 0


def _pct(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def report(args: argparse.Namespace, results: list[Round], loads: dict[str, LoadResult], cpu: dict[str, float],
           sensors: Sensors, fcm_stats: dict[str, Any], log_lines: list[str]) -> None:
    """Print the night: delivery times against the target and the baselines, the HTTP load, every error."""
    def ms(value: float) -> str:
        return f"{value * 1000:,.0f}" if value != float("inf") else "never"

    by_kind = {kind: [r for r in results if r.kind == kind] for kind in ("loaded", "quiet", "hub")}
    print()
    print(f"A flood night: a level III reading for {FLOODED_UNITS} units, {args.clients} WebSocket clients on "
          f"{args.web} web processes (PostgreSQL, Redis), a push worker, sensors every {args.report_every:g} s")
    print(f"{'rounds':<34}{'n':>3}{'post ms':>9}{'WS p50':>9}{'WS p99':>9}{'WS max':>9}{'median cl.':>11}"
          f"{'map max':>9}{'FCM p50':>9}{'FCM max':>9}")
    titles = {"loaded": "reading, under HTTP load", "quiet": "reading, no HTTP load (baseline)",
              "hub": "raw hub publish (baseline)"}
    for kind, rounds in by_kind.items():
        if not rounds:
            continue
        last = [r.last_ws for r in rounds]
        fcm = [r.fcm_last for r in rounds]
        print(f"{titles[kind]:<34}{len(rounds):>3}{ms(statistics.median(r.post for r in rounds)):>9}"
              f"{ms(_pct(last, 50)):>9}{ms(_pct(last, 99)):>9}{ms(max(last)):>9}"
              f"{ms(statistics.median(r.median_ws for r in rounds)):>11}"
              + (f"{ms(max(r.map_last for r in rounds)):>9}{ms(_pct(fcm, 50)):>9}{ms(max(fcm)):>9}"
                 if kind != "hub" else ""))
        print(f"{'':<34}last WebSocket per round: {', '.join(ms(t) for t in last)} ms")
    loaded = [r.last_ws for r in by_kind["loaded"]]
    if loaded:
        p99 = _pct(loaded, 99)
        print(f"reading to the last of {args.clients} WebSockets under load: p99 {ms(p99)} ms "
              f"{'PASS' if p99 < TARGET_P99_SECONDS else 'ABOVE'} (< {TARGET_P99_SECONDS * 1000:.0f} ms)")
        for kind in ("quiet", "hub"):
            if by_kind[kind]:
                base = statistics.median(r.last_ws for r in by_kind[kind])
                print(f"  median ratio to {titles[kind]}: {statistics.median(loaded) / base:.2f}")
    print("(WS = time from posting the reading to the last client's inbox event; median cl. = to the median "
          "client; map = the map channel's warning message; FCM = the last of the 15 topic messages at the fake)")
    print()
    print(f"HTTP load during the loaded rounds ({args.concurrency} connections per target, asyncio client):")
    print(f"{'target':<12}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}  statuses")
    for label, load in loads.items():
        print(f"{label:<12}{load.rps:>9.1f}{load.p50_ms:>9.1f}{load.p99_ms:>9.1f}{load.max_ms:>9.1f}{load.errors:>8}"
              f"  {load.statuses}")
    print("web process CPU during the loaded rounds: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
          + f"; load average {os.getloadavg()[0]:.1f}")
    print()
    errors = [f"{r.kind} round: {p}" for r in results for p in r.problems]
    errors += [f"HTTP load {label}: {load.errors} errors {load.statuses}" for label, load in loads.items() if load.errors]
    errors += [f"sensor: {e}" for e in sensors.errors[:10]]
    if len(sensors.errors) > 10:
        errors.append(f"sensor: ... {len(sensors.errors) - 10} more")
    if fcm_stats.get("errors"):
        errors.append(f"fake FCM: {fcm_stats['errors']} errors")
    errors += [f"log: {line}" for line in log_lines[:10]]
    if len(log_lines) > 10:
        errors.append(f"log: ... {len(log_lines) - 10} more lines")
    print(f"sensor readings posted: {sensors.posted} ({len(sensors.errors)} refused or failed); fake FCM: "
          f"{fcm_stats.get('accepted')} messages accepted")
    print(f"errors: {len(errors)} {'PASS' if not errors else 'FAIL'} (target 0)")
    for line in errors:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: the benchmark, or one of its child roles."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_fake":
        return _fake_main(argv[1])
    if argv and argv[0] == "_clients":
        clients_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.bench_flood_night", description=__doc__.split("\n\n")[0])
    parser.add_argument("--city", default=DEFAULT_CITY,
                        help=f"PostgreSQL city to copy, generated when missing ({DEFAULT_CITY})")
    parser.add_argument("--scale", type=float, default=0.05, help="scale of a city generated here (0.05)")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"a Redis database of the night's own ({DEFAULT_REDIS})")
    parser.add_argument("--clients", type=int, default=10_000, help="WebSocket clients (10000)")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes (4)")
    parser.add_argument("--web", type=int, default=2, help="web processes (2)")
    parser.add_argument("--rounds", type=int, default=5, help="level III readings under HTTP load (5)")
    parser.add_argument("--quiet-rounds", type=int, default=3,
                        help="readings without HTTP load, each beside a raw hub publish (3)")
    parser.add_argument("--round-every", type=float, default=10.0, help="seconds between loaded rounds (10)")
    parser.add_argument("--report-every", type=float, default=10.0, help="seconds between a sensor's readings (10)")
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP connections per load target (4)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of HTTP load before the first round (2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a round's deliveries (30)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between baseline rounds (1)")
    args = parser.parse_args(argv)
    if args.web < 1 or args.client_procs < args.web or args.clients < FLOODED_UNITS or args.rounds < 1:
        parser.error("need --web >= 1, --client-procs >= --web, --clients >= 15 and --rounds >= 1")
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
