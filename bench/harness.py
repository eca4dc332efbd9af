"""Reusable benchmark pieces: servers in subprocesses, a load generator in another process, comparisons.

A benchmark names a baseline ``Target`` and one or more targets, calls ``compare`` and prints the
result with ``report``. Every figure it prints is a ratio against the baseline measured in the same
run, with baseline and target runs interleaved, because absolute numbers on a shared 2-core machine
mean nothing from one minute to the next.

Run as ``python -m bench.harness _loadgen SPEC`` only by ``run_load`` itself (the load-generator child).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Exactly 32 characters, as the brief asks; only ever used against a throw-away database.
BENCH_SECRET_KEY = "bench-only-secret-key-32-chars!!"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class BenchError(RuntimeError):
    """The benchmark could not measure what it was asked to (a server did not start, a target failed)."""


# --------------------------------------------------------------------------------------------------
# What to measure


@dataclass
class LoadSettings:
    """How hard and how long to drive every target; the same for baseline and targets."""

    seconds: float = 10.0
    warmup: float = 2.0
    concurrency: int = 32
    rounds: int = 3
    # "auto" uses wrk when it is on PATH, else the asyncio client; one client for the whole run.
    client: str = "auto"


# Called with (env, workdir) before the server starts, e.g. to migrate and seed its database.
Prepare = Callable[[dict[str, str], Path], None]


@dataclass(eq=False)  # identity, not value: targets that share one Server object share one process
class Server:
    """An app uvicorn serves in its own process; ``{workdir}`` in env values becomes its temp dir."""

    name: str
    app: str
    factory: bool = False
    ready_path: str = "/healthz"
    env: dict[str, str] = field(default_factory=dict)
    prepare: Prepare | None = None

    @classmethod
    def bare(cls) -> Server:
        """The baseline: ``bench.bare_app:app``, ready when ``/bare`` answers."""
        return cls(name="bare", app="bench.bare_app:app", ready_path="/bare")

    @classmethod
    def product(cls, env: Mapping[str, str] | None = None, prepare: Prepare | None = None) -> Server:
        """The super-app from ``core.app:create_app_from_env`` on a fresh, migrated and seeded SQLite file."""
        base = {
            "SUPERAPP_DATABASE_URL": "sqlite:///{workdir}/bench.db",
            "SUPERAPP_ENV": "test",
            "SUPERAPP_SECRET_KEY": BENCH_SECRET_KEY,
            "SUPERAPP_LOG_LEVEL": "WARNING",
            "SUPERAPP_SCHEDULER_ENABLED": "false",
        }
        return cls(
            name="product",
            app="core.app:create_app_from_env",
            factory=True,
            ready_path="/healthz",
            env={**base, **(env or {})},
            prepare=prepare or migrate_and_seed,
        )


@dataclass
class RunningServer:
    """A started server: where it listens, its pid and the environment it was started with."""

    server: Server
    port: int
    pid: int
    env: dict[str, str]
    workdir: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"


# Headers may depend on the running server (a bearer token minted with its secret, or fetched from it).
Headers = Mapping[str, str] | Callable[[RunningServer], Mapping[str, str]]


@dataclass(eq=False)
class Target:
    """One endpoint to drive: which server, which path, which extra request headers."""

    label: str
    server: Server
    path: str
    headers: Headers = field(default_factory=dict)
    # A response outside this set counts as an error, so a fast 500 can never pass for speed.
    expect_status: frozenset[int] = frozenset({200})

    def describe(self) -> str:
        """``GET /path [Header: value, ...]`` with long header values shortened."""
        if callable(self.headers):
            return f"GET {self.path} [computed headers]"
        shown = ", ".join(f"{k}: {_shorten(v)}" for k, v in self.headers.items())
        return f"GET {self.path}" + (f" [{shown}]" if shown else "")


def _shorten(value: str, width: int = 16) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Servers


def superapp_command() -> list[str]:
    """The ``superapp`` console script of the running interpreter's environment (else PATH, else -c)."""
    # Prefer the script beside sys.executable so the CLI and the server use the same venv.
    beside = Path(sys.executable).parent / ("superapp.exe" if os.name == "nt" else "superapp")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("superapp")
    if found:
        return [found]
    return [sys.executable, "-c", "from core.cli import main; main()"]


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child: ours without SUPERAPP_*, the work tree first on PYTHONPATH, plus ``extra``."""
    # A developer's own SUPERAPP_* (a Redis URL, a mini-app allowlist) would silently change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    # The work tree under test, not whatever copy of core/ happens to be installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def migrate_and_seed(env: dict[str, str], workdir: Path) -> None:
    """Run ``superapp db upgrade`` then ``superapp seed demo`` against the benchmark database."""
    for args in (["db", "upgrade"], ["seed", "demo"]):
        done = subprocess.run(
            superapp_command() + args, env=env, cwd=workdir, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise BenchError(
                f"`superapp {' '.join(args)}` failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def start_server(server: Server, workdir: Path) -> Iterator[RunningServer]:
    """Prepare and start ``server`` with uvicorn (one worker) in ``workdir``; stop it on exit."""
    env = child_env({k: v.replace("{workdir}", str(workdir)) for k, v in server.env.items()})
    if server.prepare is not None:
        server.prepare(env, workdir)
    log_path = workdir / f"{server.name}-server.log"
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", server.app,
        *(["--factory"] if server.factory else []),
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log",
        # Import from the work tree; cwd is the temp dir so a developer's .env is not read.
        "--app-dir", str(ROOT),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, server.ready_path, log_path)
        yield RunningServer(server=server, port=port, pid=proc.pid, env=env, workdir=workdir)
    finally:
        stop_server(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before answering:\n{_tail(log_path)}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"server did not answer GET {path} within {START_TIMEOUT:.0f}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Ask uvicorn to shut down gracefully (SIGTERM), and kill it if it has not within 15 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def process_memory_kib(pid: int) -> tuple[int | None, int | None]:
    """(current RSS, peak RSS) of a process in KiB (Linux /proc; None elsewhere)."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found.get("VmRSS"), found.get("VmHWM")


# --------------------------------------------------------------------------------------------------
# Load generation


@dataclass
class LoadResult:
    """One timed run against one target."""

    client: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    statuses: dict[str, int] = field(default_factory=dict)
    # Fractions of one core during the measured window; a client near 1.0 would be the bottleneck.
    client_cpu: float | None = None
    server_cpu: float | None = None


def resolve_client(name: str) -> str:
    """Turn ``auto`` into ``wrk`` when wrk is on PATH, else ``asyncio``; check an explicit ``wrk``."""
    if name == "auto":
        return "wrk" if shutil.which("wrk") else "asyncio"
    if name == "wrk" and not shutil.which("wrk"):
        raise BenchError("--client wrk asked for, but wrk is not on PATH")
    if name not in ("wrk", "asyncio"):
        raise BenchError(f"unknown client {name!r}; use auto, asyncio or wrk")
    return name


def run_load(
    running: RunningServer,
    path: str,
    headers: Mapping[str, str],
    settings: LoadSettings,
    expect_status: frozenset[int] = frozenset({200}),
) -> LoadResult:
    """Drive ``path`` on ``running`` from a second process with ``settings.concurrency`` keep-alive connections."""
    client = resolve_client(settings.client)
    if client == "wrk":
        # wrk only counts non-2xx/3xx as errors; a 3xx where 200 is expected is caught by compare's preflight.
        return _run_wrk(running, path, headers, settings)
    spec = {
        "host": HOST,
        "port": running.port,
        "path": path,
        "headers": dict(headers),
        "concurrency": settings.concurrency,
        "warmup": settings.warmup,
        "seconds": settings.seconds,
        "expect_status": sorted(expect_status),
        "server_pid": running.pid,
    }
    # A separate process so the client's event loop never competes with the caller's Python for a GIL.
    done = subprocess.run(
        [sys.executable, "-m", "bench.harness", "_loadgen", json.dumps(spec)],
        cwd=ROOT, env=child_env({}), capture_output=True, text=True,
        timeout=settings.warmup + settings.seconds + 60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"load generator failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return LoadResult(**json.loads(lines[-1]))


def _request_bytes(host: str, port: int, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: superapp-bench", "Accept: */*",
             "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, whether the connection may be reused)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep = b"\r\nconnection: close" not in lower
    if status < 200 or status in (204, 304):
        return status, keep
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding:" in lower and b"chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                    pass
                break
            await reader.readexactly(size + 2)
    else:
        await reader.read()  # body runs to EOF
        keep = False
    return status, keep


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop load: each connection sends its next request when the previous response is read."""
    host, port = spec["host"], spec["port"]
    request = _request_bytes(host, port, spec["path"], spec["headers"])
    expect = set(spec["expect_status"])
    server_pid = spec.get("server_pid")
    perf = time.perf_counter
    start = perf()
    measure_from = start + spec["warmup"]
    measure_to = measure_from + spec["seconds"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    marks: dict[str, float | None] = {}

    async def connection() -> None:
        nonlocal failures
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while perf() < measure_to:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                sent = perf()
                writer.write(request)
                status, keep = await _read_response(reader)
                done = perf()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                if measure_from <= perf() < measure_to:
                    failures += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)  # a dead server must not turn the client into a busy loop
                continue
            # Count what completes inside the window; warm-up and the tail are left out.
            if measure_from <= done < measure_to:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
            if not keep:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def meter() -> None:
        # CPU is sampled at the window's edges so warm-up work is not charged to the run.
        await asyncio.sleep(max(0.0, measure_from - perf()))
        marks["client0"], marks["server0"] = time.process_time(), _maybe_cpu(server_pid)
        await asyncio.sleep(max(0.0, measure_to - perf()))
        marks["client1"], marks["server1"] = time.process_time(), _maybe_cpu(server_pid)

    tasks = [asyncio.create_task(connection()) for _ in range(spec["concurrency"])]
    meter_task = asyncio.create_task(meter())
    await meter_task
    # A request stuck past the window is a failure, not a reason to wait forever.
    _done, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    failures += len(pending)
    await asyncio.gather(*pending, return_exceptions=True)

    seconds = spec["seconds"]
    latencies.sort()
    bad = sum(n for s, n in statuses.items() if s not in expect)
    return {
        "client": "asyncio",
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else math.nan) * 1000,
        "errors": failures + bad,
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "client_cpu": _fraction(marks.get("client0"), marks.get("client1"), seconds),
        "server_cpu": _fraction(marks.get("server0"), marks.get("server1"), seconds),
    }


def _maybe_cpu(pid: int | None) -> float | None:
    return process_cpu_seconds(pid) if pid else None


def _fraction(before: float | None, after: float | None, seconds: float) -> float | None:
    return None if before is None or after is None else (after - before) / seconds


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# wrk prints its own human summary; this done() hook prints the exact figures as one JSON line instead.
_WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,' ..
    '"max_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _run_wrk(running: RunningServer, path: str, headers: Mapping[str, str], settings: LoadSettings) -> LoadResult:
    script = running.workdir / "bench-report.lua"
    script.write_text(_WRK_LUA)
    base = ["wrk", "-t1", f"-c{settings.concurrency}", "--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        base += ["-H", f"{name}: {value}"]
    url = running.base_url + path

    def wrk(seconds: float) -> dict[str, Any]:
        # wrk only takes whole seconds.
        done = subprocess.run(base + [f"-d{max(1, round(seconds))}s", url], capture_output=True, text=True,
                              timeout=seconds + 60)
        found = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
        if done.returncode != 0 or not found:
            raise BenchError(f"wrk failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return json.loads(found[-1].removeprefix("BENCH_JSON "))

    if settings.warmup > 0:
        wrk(settings.warmup)
    cpu0, client0 = process_cpu_seconds(running.pid), _children_cpu_seconds()
    out = wrk(settings.seconds)
    cpu1, client1 = process_cpu_seconds(running.pid), _children_cpu_seconds()
    seconds = out["duration_us"] / 1e6
    return LoadResult(
        client="wrk",
        requests=int(out["requests"]),
        seconds=seconds,
        rps=out["requests"] / seconds,
        p50_ms=out["p50_us"] / 1000,
        p90_ms=out["p90_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        max_ms=out["max_us"] / 1000,
        # wrk's "status" errors are responses outside 2xx/3xx.
        errors=int(sum(out[k] for k in ("connect", "read", "write", "status", "timeout"))),
        # wrk is our only child running in between, so the children's CPU delta is wrk's.
        client_cpu=_fraction(client0, client1, seconds),
        server_cpu=_fraction(cpu0, cpu1, seconds),
    )


def _children_cpu_seconds() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------------
# Comparing


@dataclass
class Measured:
    """Every run of one target, and the medians the report uses."""

    target: Target
    runs: list[LoadResult] = field(default_factory=list)
    # Server memory after all rounds (KiB), for memory comparisons; None off Linux.
    rss_kib: int | None = None
    peak_rss_kib: int | None = None

    @property
    def rps(self) -> float:
        """Median requests per second over the rounds."""
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        """Median of the rounds' p50 latencies."""
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        """Median of the rounds' p99 latencies."""
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        """Errors over all rounds."""
        return sum(r.errors for r in self.runs)

    @property
    def rps_per_core(self) -> float:
        """Median of requests per second of server CPU (nan when the server's CPU could not be read)."""
        per = [r.rps / r.server_cpu for r in self.runs if r.server_cpu]
        return statistics.median(per) if per else math.nan

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds' rps: how much the machine moved during the run."""
        values = [r.rps for r in self.runs]
        middle = statistics.median(values)
        return (max(values) - min(values)) / middle if middle else math.nan


@dataclass
class Comparison:
    """A baseline and its targets, measured in one run with the same settings and client."""

    settings: LoadSettings
    client: str
    baseline: Measured
    targets: list[Measured]

    def rps_ratio(self, measured: Measured) -> float:
        """Target's median rps over the baseline's (higher is better; 1.0 = as fast as bare)."""
        return measured.rps / self.baseline.rps if self.baseline.rps else math.nan

    def p99_ratio(self, measured: Measured) -> float:
        """Target's median p99 over the baseline's (lower is better; 1.0 = as fast as bare)."""
        return measured.p99_ms / self.baseline.p99_ms if self.baseline.p99_ms else math.nan

    def per_core_ratio(self, measured: Measured) -> float:
        """Target's requests per server CPU-second over the baseline's: the rps ratio, less a neighbour's noise."""
        return measured.rps_per_core / self.baseline.rps_per_core


def compare(
    baseline: Target,
    target: Target | None = None,
    *,
    targets: Sequence[Target] = (),
    settings: LoadSettings | None = None,
    progress: TextIO | None = sys.stderr,
) -> Comparison:
    """Start each distinct server once, then run baseline and targets interleaved for ``settings.rounds``."""
    settings = settings or LoadSettings()
    everything = [baseline, *([target] if target is not None else []), *targets]
    if len(everything) < 2:
        raise BenchError("compare() needs a baseline and at least one target")
    client = resolve_client(settings.client)
    # Every run uses the same client, so a ratio never mixes two clients' overheads.
    settings = LoadSettings(**{**settings.__dict__, "client": client})

    def say(message: str) -> None:
        if progress is not None:
            print(message, file=progress, flush=True)

    with ExitStack() as stack:
        running: dict[int, RunningServer] = {}
        for item in everything:
            if id(item.server) in running:
                continue
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{item.server.name}-")))
            say(f"starting {item.server.name} ({item.server.app}) ...")
            running[id(item.server)] = stack.enter_context(start_server(item.server, workdir))

        resolved = {id(t): _headers_for(t, running[id(t.server)]) for t in everything}
        for item in everything:
            _preflight(item, running[id(item.server)], resolved[id(item)])

        measured = {id(t): Measured(target=t) for t in everything}
        for round_no in range(settings.rounds):
            # ABBA order: alternating direction each round cancels a slow drift in machine load.
            order = everything if round_no % 2 == 0 else everything[::-1]
            for item in order:
                result = run_load(running[id(item.server)], item.path, resolved[id(item)], settings,
                                  item.expect_status)
                measured[id(item)].runs.append(result)
                say(f"  round {round_no + 1}/{settings.rounds}  {item.label:<14} {result.rps:9.1f} rps  "
                    f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}")
        for item in everything:
            rss, peak = process_memory_kib(running[id(item.server)].pid)
            measured[id(item)].rss_kib, measured[id(item)].peak_rss_kib = rss, peak

    return Comparison(settings=settings, client=client, baseline=measured[id(baseline)],
                      targets=[measured[id(t)] for t in everything[1:]])


def _headers_for(target: Target, running: RunningServer) -> dict[str, str]:
    return dict(target.headers(running) if callable(target.headers) else target.headers)


def _preflight(target: Target, running: RunningServer, headers: Mapping[str, str]) -> None:
    """One request before timing anything: a target that errors would otherwise look fast."""
    conn = http.client.HTTPConnection(HOST, running.port, timeout=10)
    try:
        conn.request("GET", target.path, headers=dict(headers))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status not in target.expect_status:
        raise BenchError(
            f"{target.label}: GET {target.path} answered {response.status}, expected "
            f"{sorted(target.expect_status)}: {body[:300]!r}"
        )


def report(
    comparison: Comparison,
    *,
    title: str,
    rps_floor: float | None = None,
    p99_ceiling: float | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Print the table: medians per target, ratios against the baseline, PASS/BELOW against the floors."""
    s = comparison.settings
    print(title, file=out)
    print(f"concurrency {s.concurrency}, {s.seconds:g}s measured after {s.warmup:g}s warm-up, "
          f"{s.rounds} interleaved round(s), medians; client {comparison.client}", file=out)
    print(file=out)
    header = (f"{'target':<14} {'request':<44} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
              f"  {'rps ratio':<20} {'p99 ratio':<20} {'per-core ratio'}")
    print(header, file=out)
    print("-" * len(header), file=out)
    for m in [comparison.baseline, *comparison.targets]:
        is_base = m is comparison.baseline
        rps_ratio = comparison.rps_ratio(m)
        p99_ratio = comparison.p99_ratio(m)
        rps_cell = f"{rps_ratio:.2f}"
        p99_cell = f"{p99_ratio:.2f}"
        core_cell = f"{comparison.per_core_ratio(m):.2f}"
        if is_base:
            rps_cell = p99_cell = core_cell = "1.00 (baseline)"
        else:
            if rps_floor is not None:
                rps_cell += f" {'PASS' if rps_ratio >= rps_floor else 'BELOW'} (>={rps_floor:.2f})"
            if p99_ceiling is not None:
                p99_cell += f" {'PASS' if p99_ratio <= p99_ceiling else 'ABOVE'} (<={p99_ceiling:.2f})"
        print(f"{m.target.label:<14} {_fit(m.target.describe(), 44):<44} {m.rps:9.1f} {m.p50_ms:8.2f} "
              f"{m.p99_ms:8.2f} {m.errors:>6}  {rps_cell:<20} {p99_cell:<20} {core_cell}", file=out)
    print(file=out)
    print("per round (rps): " + "; ".join(
        f"{m.target.label} " + " ".join(f"{r.rps:.0f}" for r in m.runs)
        for m in [comparison.baseline, *comparison.targets]), file=out)
    _print_sanity(comparison, out)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_sanity(comparison: Comparison, out: TextIO) -> None:
    """Client and server CPU and server memory: tells whether the figures measure the server at all."""
    parts = []
    for m in [comparison.baseline, *comparison.targets]:
        client = [r.client_cpu for r in m.runs if r.client_cpu is not None]
        server = [r.server_cpu for r in m.runs if r.server_cpu is not None]
        bits = []
        if server:
            bits.append(f"server cpu {statistics.median(server):.2f}")
        if client:
            bits.append(f"client cpu {statistics.median(client):.2f}")
        if m.rss_kib:
            bits.append(f"server rss {m.rss_kib / 1024:.0f} MiB (peak {(m.peak_rss_kib or 0) / 1024:.0f})")
        if bits:
            parts.append(f"{m.target.label}: " + ", ".join(bits))
    if parts:
        print("cores used (1.00 = one core busy) and memory, medians:", file=out)
        for part in parts:
            print("  " + part, file=out)
    busy_client = [r.client_cpu for m in [comparison.baseline, *comparison.targets] for r in m.runs
                   if r.client_cpu is not None and r.client_cpu > 0.8]
    if busy_client:
        # Then the client, not the server, sets the pace and the ratios are compressed towards 1.
        print("warning: the load generator used >80% of a core in some runs; lower --concurrency or use wrk",
              file=out)
    base = comparison.baseline
    base_cpu = [r.server_cpu for r in base.runs if r.server_cpu is not None]
    if base_cpu and statistics.median(base_cpu) < 0.85:
        # A saturated single worker uses a full core; less means something else took the CPU.
        print(f"warning: the baseline server got only {statistics.median(base_cpu):.2f} of a core; another "
              "process competed for the CPU: trust the per-core ratio more, or run again", file=out)
    if len(base.runs) > 1 and base.spread > 0.15:
        print(f"warning: the baseline's rounds differ by {base.spread:.0%}; the machine was noisy: "
              "run again or with more --rounds", file=out)


# --------------------------------------------------------------------------------------------------
# Command-line options every benchmark shares


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: duration, warm-up, concurrency, rounds and client."""
    defaults = LoadSettings()
    parser.add_argument("--seconds", type=_positive(float), default=defaults.seconds,
                        help="measured seconds per run (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=defaults.warmup,
                        help="unmeasured seconds before each run (default %(default)s)")
    parser.add_argument("--concurrency", type=_positive(int), default=defaults.concurrency,
                        help="keep-alive connections, the same for every target (default %(default)s)")
    parser.add_argument("--rounds", type=_positive(int), default=defaults.rounds,
                        help="interleaved rounds; the report shows medians (default %(default)s)")
    parser.add_argument("--client", choices=("auto", "asyncio", "wrk"), default=defaults.client,
                        help="load generator; auto = wrk when on PATH, else asyncio (default %(default)s)")


def settings_from(args: argparse.Namespace) -> LoadSettings:
    """LoadSettings from the parsed shared options."""
    return LoadSettings(seconds=args.seconds, warmup=args.warmup, concurrency=args.concurrency,
                        rounds=args.rounds, client=args.client)


# --------------------------------------------------------------------------------------------------
# The load-generator child


def _loadgen_main(argv: Sequence[str]) -> int:
    """Entry point of the child process ``run_load`` starts: run one load and print its JSON result."""
    spec = json.loads(argv[0])
    print(json.dumps(asyncio.run(_drive(spec))), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_loadgen":
        sys.exit(_loadgen_main(sys.argv[2:]))
    print("usage: python -m bench.harness _loadgen SPEC   (started by run_load; see bench/README.md)",
          file=sys.stderr)
    sys.exit(2)
