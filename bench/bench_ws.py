"""WebSocket fan-out: one event to 10,000 connected clients, the product's ``/ws`` against a raw broadcast.

Issue targets: *deliveries per second at least 80% of a raw ``websockets`` broadcast server on the same
machine (issue 13; 50% before); one never-reading client changes the others' delivery time by under
10%; under 20 KiB per idle connection (issue 13); with ``--redis URL``, an event published in one
worker reaches the clients of another: publish to the last client, p50 and p99.*

- **baseline** (``raw``): ``websockets.asyncio.server`` in its own process; a message sent to its
  ``/publish`` socket goes to every other connection with ``websockets.broadcast`` (no queue, no
  backpressure, no authentication: the ceiling of Python WebSockets on this machine).
- **product**: ``core.app:create_app_from_env`` under uvicorn with ``superapp serve``'s WebSocket options
  (``push.wsprotocol.UVICORN_OPTIONS``: its lean protocol, no permessage-deflate, 64 KiB frames),
  on a migrated and seeded SQLite file, in-process broker; every client signs
  in with a bearer token in ``?token=`` and subscribes to ``feed``. ``bench.bench_ws:product_app``
  only adds a ``/bench/publish`` socket that calls ``app.state.realtime.publish`` and a
  ``/bench/stats`` page. Heartbeats are off on both servers (uvicorn ``--ws-ping-interval 0``,
  ``ping_interval=None``, the hub's own pings every hour): 10,000 connections' pings are a steady
  background load that would land inside measured rounds at random.

Clients are bare asyncio protocols (handshake, frame parsing, pong) spread over several processes
so they are cheaper than the servers. Each offers permessage-deflate, as browsers do, and stops if a
server accepts it. With two or more CPUs the server processes are pinned to CPU 0
and the clients and driver to the others. A round publishes one event with a sequence number and waits
until every client has it: *delivery time* is the last arrival minus the moment of publishing
(``time.monotonic`` is one clock for every process on Linux), *deliveries/s* = clients / delivery
time. Each server also reports how long it spent writing the event to every socket (*server
writes/s*), which does not depend on the clients' pace. The ratio is the lower of the two
(end to end, server side). Baseline and product rounds alternate (ABBA); the table shows medians.
Rounds during which the product ran a full garbage collection are starred.

The never-reading client subscribes to ``feed`` and to its user channel with a 4 KiB receive buffer
and never reads; before each of its rounds it is stuffed with large events on its user channel until
the server's writes to it block, so while the round runs its frames queue behind a blocked socket.
Its rounds alternate with rounds without it, which are preceded by the same stuffing sent to a
channel nobody follows. The verdict is on the others' delivery time; the server's own write time is
shown beside it. Last, one never-reading client is stuffed past its queue and must be closed with
1013 (``/bench/stats`` counts it); one more round is measured right after.

Memory per idle connection: each server's RSS after N clients connected (and subscribed), minus
its RSS before, divided by N.

Run: ``python -m bench.bench_ws`` (10,000 clients, about a minute and a half) or
``--clients 2000 --rounds 5``. Diagnostics: ``BENCH_WS_KEEP=/some/dir`` keeps the servers' logs
there; ``BENCH_WS_GC_LOG=1`` makes the product log each full garbage collection and its pause (with
10,000 connections a full collection walks ~1.8 million objects and takes about a second).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect  # at module level: FastAPI resolves the string annotation here

from bench.harness import (
    BENCH_SECRET_KEY,
    HOST,
    ROOT,
    BenchError,
    child_env,
    free_port,
    migrate_and_seed,
    process_memory_kib,
    stop_server,
    superapp_command,
)
from push.wsprotocol import uvicorn_cli_options

# With two or more CPUs the servers get CPU 0 to themselves and the clients and driver the others, so
# a server's fan-out never waits for its clients' turn on the same core (the largest source of noise).
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPUS = set(CPUS[:1]) if len(CPUS) >= 2 else set()
CLIENT_CPUS = set(CPUS[1:]) if len(CPUS) >= 2 else set()
RATE_FLOOR = 0.80
SLOW_CEILING = 0.10
MEMORY_CEILING_KIB = 20.0
SEQ = re.compile(rb'"seq":(\d+)')


# --------------------------------------------------------------------------------------------------
# The product as served for the benchmark


def product_app() -> Any:
    """The super-app plus a publishing socket and a stats page for the benchmark driver."""
    from core.app import create_app_from_env

    app = create_app_from_env()
    if os.environ.get("BENCH_WS_GC_LOG"):
        import gc

        started: list[float] = []

        def timing(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[:] = [time.perf_counter()]
            elif info["generation"] == 2:
                print(f"gc gen2 {1000 * (time.perf_counter() - started[0]):.0f} ms collected={info['collected']} "
                      f"objects={len(gc.get_objects())}", file=sys.stderr, flush=True)

        gc.callbacks.append(timing)
    hub = app.state.realtime
    hub.heartbeat_seconds = 3600.0  # no application ping bursts inside a measured round

    @app.websocket("/bench/publish")
    async def publish(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = json.loads(await ws.receive_text())
                started = time.perf_counter()
                await hub.publish(message["channel"], message["event"])
                # The hub has queued the event and started a writer per connection; they all run in
                # the next turns of the loop, before this coroutine resumes.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                await ws.send_text(f"{time.perf_counter() - started:.6f}")
        except WebSocketDisconnect:
            pass

    @app.get("/bench/stats")
    async def stats() -> dict[str, Any]:
        import gc

        return {**hub.stats, "connections": len(hub.connections), "full_gcs": gc.get_stats()[2]["collections"]}

    return app


# --------------------------------------------------------------------------------------------------
# The baseline server (child process)


def raw_server(port: int) -> None:
    """A bare ``websockets`` server: ``/publish`` messages are broadcast to every other connection."""
    from websockets.asyncio.server import broadcast, serve

    clients: set[Any] = set()

    def health(connection: Any, request: Any) -> Any:
        return connection.respond(200, "ok\n") if request.path == "/health" else None

    async def handler(ws: Any) -> None:
        if ws.request.path == "/publish":
            async for message in ws:
                started = time.perf_counter()
                broadcast(clients, message)
                await ws.send(f"{time.perf_counter() - started:.6f}")
            return
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def main() -> None:
        async with serve(handler, HOST, port, process_request=health, compression=None, backlog=4096,
                         max_queue=None, ping_interval=None) as server:
            loop = asyncio.get_running_loop()
            stop = loop.create_future()
            loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
            await stop
            server.close()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------------
# Clients (child processes)


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask); only used for short frames: subscribe and pongs."""
    mask, n = os.urandom(4), len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class BenchClient(asyncio.Protocol):
    """One WebSocket client: handshake, optional subscribe, then record when each ``seq`` arrives."""

    def __init__(self, spec: dict[str, Any], arrivals: dict[int, list[float]], ready: asyncio.Future[None]) -> None:
        self.spec, self.arrivals, self.ready = spec, arrivals, ready
        self.buffer = b""
        self.upgraded = False
        self.transport: Any = None
        self.close_code: int | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.spec['path']} HTTP/1.1\r\nHost: {HOST}:{self.spec['port']}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         # What browsers offer: both servers must decline it (these clients cannot inflate).
                         "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"handshake refused: {head[:80]!r}")
                return
            if b"permessage-deflate" in head.lower():
                self._fail("the server accepted permessage-deflate; it must serve uncompressed frames")
                return
            self.upgraded, self.buffer = True, rest
            if self.spec["subscribe"]:
                self.transport.write(_masked(0x1, json.dumps(
                    {"type": "subscribe", "channels": self.spec["subscribe"]}).encode()))
            elif not self.ready.done():
                self.ready.set_result(None)
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
                found = SEQ.search(payload)
                if found:
                    self.arrivals.setdefault(int(found.group(1)), []).append(now)
                elif not self.ready.done() and b'"subscribed"' in payload:
                    self.ready.set_result(None)
            elif opcode == 0x9:
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.transport.close()
        self.buffer = data[pos:]

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(why))
        self.transport.close()


def clients_main(spec: dict[str, Any]) -> None:
    """Open ``spec['count']`` connections, say ``ready``, then answer ``report SEQ`` lines on stdin."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrivals: dict[int, list[float]] = {}
        clients: list[BenchClient] = []
        for start in range(0, spec["count"], 100):
            batch = []
            for _ in range(min(100, spec["count"] - start)):
                ready = loop.create_future()
                client = BenchClient(spec, arrivals, ready)
                await loop.create_connection(lambda c=client: c, HOST, spec["port"])
                clients.append(client)
                batch.append(ready)
            await asyncio.wait_for(asyncio.gather(*batch), 60)
        print("ready", len(clients), flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "report":
                seq, deadline = int(line[1]), time.monotonic() + float(line[2])
                while len(arrivals.get(seq, ())) < len(clients) and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                times = arrivals.pop(seq, [])
                closed = sum(1 for c in clients if c.close_code is not None)
                print(json.dumps({"seq": seq, "times": times, "closed": closed}), flush=True)
            elif line[0] == "quit":
                break

    asyncio.run(main())


@dataclass
class ClientGroup:
    """The client processes connected to one server."""

    label: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    count: int = 0

    def arrivals(self, seq: int, timeout: float) -> list[float]:
        """Every arrival time of ``seq`` across the processes, waiting up to ``timeout`` for all of them."""
        for proc in self.processes:
            assert proc.stdin is not None
            proc.stdin.write(f"report {seq} {timeout}\n")
            proc.stdin.flush()
        times: list[float] = []
        for proc in self.processes:
            assert proc.stdout is not None
            times += json.loads(proc.stdout.readline())["times"]
        return times

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


def start_clients(label: str, port: int, path: str, count: int, procs: int,
                  subscribe: list[str] | None) -> ClientGroup:
    """``count`` connections over ``procs`` processes; returns once every one is connected (and subscribed)."""
    group = ClientGroup(label, count=count)
    shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    for share in shares:
        spec = {"port": port, "path": path, "count": share, "subscribe": subscribe}
        group.processes.append(subprocess.Popen(
            [sys.executable, "-m", "bench.bench_ws", "_clients", json.dumps(spec)], cwd=ROOT,
            env=child_env({}), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        _pin(group.processes[-1].pid, CLIENT_CPUS)
    for proc, share in zip(group.processes, shares):
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line != ["ready", str(share)]:
            group.close()
            raise BenchError(f"{label} clients did not connect (got {line!r})")
    return group


# --------------------------------------------------------------------------------------------------
# The driver


@dataclass
class Running:
    """A server process and where it listens."""

    label: str
    proc: subprocess.Popen[bytes]
    port: int


def _pin(pid: int, cpus: set[int]) -> None:
    if cpus:
        os.sched_setaffinity(pid, cpus)


def _wait_http(proc: subprocess.Popen[bytes], port: int, path: str, log: Path) -> None:
    import http.client

    _pin(proc.pid, SERVER_CPUS)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"server did not answer GET {path}")


@contextmanager
def raw_baseline(workdir: Path) -> Iterator[Running]:
    """The baseline broadcast server, stopped on exit."""
    port, log = free_port(), workdir / "raw-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.bench_ws", "_raw_server", str(port)], cwd=ROOT,
                                env=child_env({}), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(proc, port, "/health", log)
        yield Running("raw", proc, port)
    finally:
        stop_server(proc)


@contextmanager
def product(workdir: Path, redis_url: str | None = None, label: str = "product",
            migrate: bool = True) -> Iterator[tuple[Running, str]]:
    """The product (migrated, seeded unless ``migrate`` is False) and a bearer token of the demo operator,
    stopped on exit; on the Redis broker at ``redis_url`` when given (several such processes share it)."""
    env = child_env({**({"SUPERAPP_REDIS_URL": redis_url} if redis_url else {}),"BENCH_WS_GC_LOG": os.environ.get("BENCH_WS_GC_LOG", ""),
                     "SUPERAPP_DATABASE_URL": f"sqlite:///{workdir}/bench.db", "SUPERAPP_ENV": "test",
                     "SUPERAPP_SECRET_KEY": BENCH_SECRET_KEY, "SUPERAPP_LOG_LEVEL": "WARNING",
                     "SUPERAPP_SCHEDULER_ENABLED": "false", "SUPERAPP_PUSH_WORKER_ENABLED": "false"})
    if migrate:
        migrate_and_seed(env, workdir)
    done = subprocess.run(superapp_command() + ["users", "token", "operator.demo"], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"`superapp users token` failed: {done.stderr}")
    token = done.stdout.strip().splitlines()[-1]
    port, log = free_port(), workdir / f"{label}-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.bench_ws:product_app", "--factory", "--host", HOST,
             "--port", str(port), "--workers", "1", *uvicorn_cli_options(), "--backlog", "4096",
             "--ws-ping-interval", "0", "--log-level", "warning", "--no-access-log", "--app-dir", str(ROOT)],
            env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(proc, port, "/healthz", log)
        yield Running(label, proc, port), token
    finally:
        stop_server(proc)


def _user_id(token: str) -> int:
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


@dataclass
class Round:
    """One published event and when its copies arrived."""

    delivery: float  # seconds from publish to the last arrival
    median: float  # seconds from publish to the median arrival
    received: int
    server: float = float("inf")  # seconds the server spent writing the event to every socket
    full_gc: bool = False  # the product ran a full garbage collection during the round


def measure(group: ClientGroup, publisher: Any, seq: int, frame: dict[str, Any], raw: bool, timeout: float) -> Round:
    """Publish one event and wait until every client of ``group`` has it."""
    started = time.monotonic()
    if raw:  # the text the product would send: compact JSON, non-ASCII as is
        publisher.send(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))
    else:
        publisher.send(json.dumps({"channel": "feed", "event": frame["data"]}))
    server = float(publisher.recv(timeout=timeout))
    times = group.arrivals(seq, timeout)
    if not times:
        return Round(float("inf"), float("inf"), 0)
    return Round(max(times) - started, statistics.median(times) - started, len(times), server)


class SlowClient:
    """A client with a 4 KiB receive buffer that subscribes and then never reads again."""

    def __init__(self, port: int, token: str, user_id: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((HOST, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.sock.settimeout(10)
        seen = b""
        while b"\r\n\r\n" not in seen:
            seen += self._recv()
        if not seen.startswith(b"HTTP/1.1 101"):
            raise BenchError(f"slow client refused: {seen[:80]!r}")
        self.sock.sendall(_masked(0x1, json.dumps(
            {"type": "subscribe", "channels": ["feed", f"user:{user_id}"]}).encode()))
        while b'"subscribed"' not in seen:
            seen += self._recv()  # from here on it never reads again

    def _recv(self) -> bytes:
        chunk = self.sock.recv(4096)
        if not chunk:
            raise BenchError("slow client: the server closed the connection")
        return chunk

    def close(self) -> None:
        """Reset the connection (a client that vanished)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def _stats(port: int) -> dict[str, Any]:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    conn.request("GET", "/bench/stats")
    return json.loads(conn.getresponse().read())


def _frame(seq: int, pad: int) -> dict[str, Any]:
    data = {"type": "feed", "seq": seq, "title": "Cảnh báo mưa lớn tại phường Phú Xuân", "body": "x" * pad}
    return {"type": "event", "channel": "feed", "id": f"{int(time.time() * 1000)}-0", "data": data}


def run(args: argparse.Namespace) -> int:
    """Start both servers, connect the clients, alternate rounds, print the report."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.clients + 512
    if hard < needed:
        print(f"error: open-file limit {hard} is below the {needed} the server needs; raise `ulimit -Hn`",
              file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children (servers, clients) inherit it
    _pin(os.getpid(), CLIENT_CPUS)
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp, ExitStack() as stack:
        workdir = Path(os.environ.get("BENCH_WS_KEEP") or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        raw = stack.enter_context(raw_baseline(workdir))
        prod, token = stack.enter_context(product(workdir))
        user_id = _user_id(token)
        memory: dict[str, float] = {}
        groups: dict[str, ClientGroup] = {}
        for server, path, subscribe in ((raw, "/", None), (prod, f"/ws?token={token}", ["feed"])):
            time.sleep(1.0)
            before = process_memory_kib(server.proc.pid)[0] or 0
            started = time.monotonic()
            group = start_clients(server.label, server.port, path, args.clients, args.client_procs, subscribe)
            stack.callback(group.close)
            groups[server.label] = group
            time.sleep(1.0)
            after = process_memory_kib(server.proc.pid)[0] or 0
            memory[server.label] = (after - before) / args.clients
            print(f"{server.label}: {args.clients} clients connected in {time.monotonic() - started:.1f}s; "
                  f"server RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB", flush=True)
        publishers = {
            "raw": stack.enter_context(connect(f"ws://{HOST}:{raw.port}/publish", proxy=None)),
            "product": stack.enter_context(connect(f"ws://{HOST}:{prod.port}/bench/publish", proxy=None)),
        }
        seq = 0
        results: dict[str, list[Round]] = {"raw": [], "product": [], "product+slow": [], "product (slow pair)": [],
                                           "product (after a drop)": []}

        def one(label: str, group: str) -> Round:
            nonlocal seq
            seq += 1
            gcs = _stats(prod.port)["full_gcs"] if group == "product" else 0
            result = measure(groups[group], publishers[group], seq, _frame(seq, args.pad), group == "raw", 30)
            if result.received != args.clients:
                raise BenchError(f"{label}: round {seq} reached {result.received} of {args.clients} clients")
            result.full_gc = group == "product" and _stats(prod.port)["full_gcs"] != gcs
            results[label].append(result)
            time.sleep(args.pause)
            return result

        for _ in range(2):  # warm-up, not reported
            for label in ("raw", "product"):
                seq += 1
                measure(groups[label], publishers[label], seq, _frame(seq, args.pad), label == "raw", 30)
        for r in range(args.rounds):
            for label in (("raw", "product") if r % 2 == 0 else ("product", "raw")):
                one(label, label)
            print(f"round {r + 1}/{args.rounds}: raw {results['raw'][-1].delivery * 1000:.0f} ms, "
                  f"product {results['product'][-1].delivery * 1000:.0f} ms", flush=True)

        slow_blocked = 0
        stuff = {"type": "stuffing", "pad": "y" * 60_000}
        for r in range(args.slow_rounds):
            for with_slow in ((False, True) if r % 2 == 0 else (True, False)):
                # The same stuffing precedes both kinds of round (to nobody's channel when alone), so
                # the only difference between them is the blocked client.
                slow = SlowClient(prod.port, token, user_id) if with_slow else None
                for _ in range(args.stuff_events):
                    channel = f"user:{user_id}" if with_slow else "user:999999999"
                    publishers["product"].send(json.dumps({"channel": channel, "event": stuff}))
                    publishers["product"].recv(timeout=30)
                time.sleep(0.3)  # let the server write what fits; the rest waits behind a blocked socket
                if slow is None:
                    one("product (slow pair)", "product")
                    continue
                if _stats(prod.port)["connections"] == args.clients + 1:  # still connected, not dropped
                    slow_blocked += 1
                one("product+slow", "product")
                slow.close()
                time.sleep(0.3)
            print(f"slow round {r + 1}/{args.slow_rounds}: alone "
                  f"{results['product (slow pair)'][-1].delivery * 1000:.0f} ms, "
                  f"with {results['product+slow'][-1].delivery * 1000:.0f} ms", flush=True)
        # Finally one never-reading client is stuffed past its queue: it must be closed (1013), and the
        # next round must look like the others.
        dropped_round = None
        if args.slow_rounds:
            before = _stats(prod.port)["slow_consumers"]
            slow = SlowClient(prod.port, token, user_id)
            for _ in range(args.stuff_events + 400):
                publishers["product"].send(json.dumps({"channel": f"user:{user_id}", "event": stuff}))
                publishers["product"].recv(timeout=30)
            time.sleep(0.3)
            if _stats(prod.port)["slow_consumers"] > before:
                dropped_round = one("product (after a drop)", "product")
            slow.close()
        report(args, results, memory, _stats(prod.port), slow_blocked, dropped_round)
    if args.redis:
        two_workers(args)
    return 0


def two_workers(args: argparse.Namespace) -> None:
    """Two product processes on one Redis: events published through B reach ``args.clients`` clients of A."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="bench-ws-redis-") as tmp, ExitStack() as stack:
        workdir = Path(os.environ.get("BENCH_WS_KEEP") or tmp) / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        a, token = stack.enter_context(product(workdir, args.redis, label="worker-a"))
        b, _ = stack.enter_context(product(workdir, args.redis, label="worker-b", migrate=False))
        group = start_clients("worker-a", a.port, f"/ws?token={token}", args.clients, args.client_procs, ["feed"])
        stack.callback(group.close)
        publisher = stack.enter_context(connect(f"ws://{HOST}:{b.port}/bench/publish", proxy=None))
        seq, latencies = 1_000_000, []  # apart from the sequence numbers of the first part
        for n in range(args.redis_rounds + 2):
            seq += 1
            result = measure(group, publisher, seq, _frame(seq, args.pad), False, 30)
            if result.received != args.clients:
                raise BenchError(f"two workers: round {n + 1} reached {result.received} of {args.clients} clients")
            if n >= 2:  # two warm-up rounds, as in the first part
                latencies.append(result.delivery)
            time.sleep(args.pause)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print()
    print(f"two workers on Redis: one event published through worker B to {args.clients} clients of worker A "
          f"({len(latencies)} rounds)")
    print(f"publish to the last client: p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms; per round: {', '.join(f'{t * 1000:.0f}' for t in latencies)}")


def report(args: argparse.Namespace, results: dict[str, list[Round]], memory: dict[str, float],
           stats: dict[str, Any], slow_blocked: int, dropped_round: Round | None) -> None:
    """Print the comparison table."""
    def med(rounds: list[Round], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in rounds)

    def mark(r: Round) -> str:
        return f"{args.clients / r.delivery:.0f}" + ("*" if r.full_gc else "")

    def row(title: str, rounds: list[Round], verdict: str = "") -> None:
        print(f"{title:<30}{args.clients / med(rounds, 'delivery'):>13.0f}{med(rounds, 'delivery') * 1000:>9.1f}"
              f"{med(rounds, 'median') * 1000:>11.1f}{args.clients / med(rounds, 'server'):>16.0f}   {verdict}")

    raw, prod = results["raw"], results["product"]
    end_to_end = med(raw, "delivery") / med(prod, "delivery")
    server_side = med(raw, "server") / med(prod, "server")
    ratio = min(end_to_end, server_side)
    pinned = (f"servers on CPU {sorted(SERVER_CPUS)}, clients on {sorted(CLIENT_CPUS)}" if SERVER_CPUS
              else "not pinned: one CPU")
    print()
    print(f"WebSocket fan-out: one event to {args.clients} clients ({args.client_procs} client processes per "
          f"server, {pinned}; medians of {args.rounds} rounds)")
    print(f"{'target':<30}{'deliveries/s':>13}{'last ms':>9}{'median ms':>11}{'server writes/s':>16}   ratio")
    row("raw websockets broadcast", raw, "1.00 (baseline)")
    print(f"{'':<30}per round: {', '.join(mark(r) for r in raw)}")
    row("product /ws", prod, f"{ratio:.2f} {'PASS' if ratio >= RATE_FLOOR else 'BELOW'} (>={RATE_FLOOR:.2f})")
    print(f"{'':<30}per round: {', '.join(mark(r) for r in prod)}")
    print(f"ratio = the lower of end to end ({end_to_end:.2f}: clients / time until the last client has the "
          f"event) and server side ({server_side:.2f}: clients / time the server spends writing the event "
          "to every socket)")
    if med(raw, "delivery") > 1.25 * med(raw, "server"):
        print("note: the clients set the end-to-end pace (the baseline writes much faster than its clients "
              "read), which squeezes that ratio towards 1; the server-side ratio is the one to read")
    if results["product+slow"]:
        pairs = list(zip(results["product (slow pair)"], results["product+slow"]))
        calm = [p for p in pairs if not (p[0].full_gc or p[1].full_gc)]
        print()
        print(f"one never-reading client: {len(pairs)} alternating pairs of product rounds, without and with it "
              f"({len(calm)} pairs without a full garbage collection)")
        for title, chosen in (("all pairs", pairs), ("pairs without a full GC", calm if len(calm) < len(pairs) else [])):
            if not chosen:
                continue
            alone, with_slow = [p[0] for p in chosen], [p[1] for p in chosen]
            change, server_change = (med(with_slow, attr) / med(alone, attr) - 1 for attr in ("delivery", "server"))
            row(f"{title}: alone", alone)
            row("  + never-reading client", with_slow,
                f"delivery time {change:+.1%} {'PASS' if change < SLOW_CEILING else 'ABOVE'} (<+{SLOW_CEILING:.0%}); "
                f"server write time {server_change:+.1%}")
        print(f"{'':<30}alone:  {', '.join(mark(r) for r in results['product (slow pair)'])}")
        print(f"{'':<30}+ slow: {', '.join(mark(r) for r in results['product+slow'])}")
        print(f"in {slow_blocked} of {len(results['product+slow'])} of those rounds the never-reading client was "
              f"still connected with its writes blocked (stuffed with {args.stuff_events} events of 60 kB)")
        if dropped_round is not None:
            row("product, right after a drop", [dropped_round],
                f"a never-reading client stuffed past its queue was closed with 1013 "
                f"(slow consumers closed: {stats.get('slow_consumers')})")
        else:
            print(f"a never-reading client stuffed past its queue was NOT closed (slow consumers closed: "
                  f"{stats.get('slow_consumers')})")
    if any(r.full_gc for rounds in results.values() for r in rounds):
        print("* = the product ran a full garbage collection during that round")
    verdict = "PASS" if memory["product"] < MEMORY_CEILING_KIB else "ABOVE"
    print(f"memory per idle connection: raw {memory['raw']:.1f} KiB, product {memory['product']:.1f} KiB "
          f"{verdict} (<{MEMORY_CEILING_KIB:.0f} KiB) (server RSS growth / clients; product connections signed in "
          "and subscribed to feed; every client offers permessage-deflate as browsers do)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: the benchmark, or one of its child roles."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_raw_server":
        raw_server(int(argv[1]))
        return 0
    if argv and argv[0] == "_clients":
        clients_main(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000, help="connected clients per server (10000)")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes per server (4)")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per server (10)")
    parser.add_argument("--slow-rounds", type=int, default=10,
                        help="pairs of rounds with and without a never-reading client (10)")
    parser.add_argument("--stuff-events", type=int, default=120,
                        help="60 kB events sent to the never-reading client before each of its rounds (120)")
    parser.add_argument("--pad", type=int, default=100, help="bytes of padding in each event (100)")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between rounds (0.3)")
    parser.add_argument("--redis", metavar="URL",
                        help="also measure two product workers on this Redis (a database of its own: its "
                             "streams are written), e.g. redis://127.0.0.1:6379/10")
    parser.add_argument("--redis-rounds", type=int, default=20, help="events published across workers (20)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
