"""Push delivery through the outbox against a bare firebase-admin loop, both to a loopback fake FCM.

Target from the issue: "100,000 targeted notifications through firebase-admin to the fake FCM
server: throughput at least 80% of a bare SDK loop sending the same messages; peak memory
reported." Two runs per round, each in a fresh Python process, alternating ABBA across rounds:

- ``bare``: ``messaging.send_each_async`` on chunks of 500 messages, ``--concurrency`` chunks at
  once, nothing else (the baseline);
- ``outbox``: the same messages as ``push_outbox`` rows of 500 tokens in a SQLite file (written
  beforehand with ``push.outbox.enqueue_tokens``, not timed), drained by ``OutboxWorker.run`` with
  ``batch_size = --concurrency``: claim with a lease, send, deactivate, record, per row.

Both send identical messages (``push.fcm.build_template``: data-only, severity-based Android/APNs/
web push options) to distinct tokens through the real SDK and its httpx client. The fake FCM is
``plugins.fakes.firebase.Http2Fcm`` in a process of its own: HTTP/2 over TLS like Google (the SDK
multiplexes a batch on one connection), asyncio, counters only, so it is not the bottleneck (its
CPU is printed). Over plain HTTP/1.1 the SDK would queue each 500-message batch in httpcore's
100-connection pool, whose bookkeeping is quadratic in the queue; that would measure httpcore.

A report, not a test: exits 0 whatever the ratio, non-zero only when it could not measure.

    python -m bench.bench_push [--messages N] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import ROOT, BenchError, child_env, process_cpu_seconds

THROUGHPUT_FLOOR = 0.80
NOTIFICATION_ID = 1


# --------------------------------------------------------------------------------------------------
# Children


def _rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process, in KiB."""
    current = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1])
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _tokens(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:07d}-bench-registration-token" for i in range(count)]


async def _bare(spec: dict[str, Any]) -> dict[str, Any]:
    """The baseline: chunks of 500 through send_each_async, ``concurrency`` chunks at once."""
    from firebase_admin import messaging

    from plugins.fakes.firebase import adelete_test_app, initialize_test_app
    from push.fcm import build_template, token_messages

    app = initialize_test_app()
    tokens = _tokens(spec["prefix"], spec["messages"])
    chunks = [tokens[i:i + 500] for i in range(0, len(tokens), 500)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    failures = 0

    async def sender() -> None:
        nonlocal failures
        while not queue.empty():
            chunk = queue.get_nowait()
            template = build_template(notification_id=NOTIFICATION_ID, severity="warning")
            batch = await messaging.send_each_async(token_messages(chunk, template), app=app)
            failures += batch.failure_count

    await _warm_up(app)
    rss_before, _ = _rss_kib()
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(spec["concurrency"])))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await adelete_test_app(app)
    return {"seconds": elapsed, "cpu": cpu, "failures": failures, "rss_before_kib": rss_before,
            "peak_rss_kib": _rss_kib()[1]}


async def _outbox(spec: dict[str, Any]) -> dict[str, Any]:
    """The product: OutboxWorker.run draining the prepared rows through FcmSender."""
    from sqlalchemy import func, select

    from core.db import make_engine
    from plugins.fakes.firebase import adelete_test_app, initialize_test_app
    from push.fcm import FcmSender
    from push.models import OutboxStatus, PushOutbox
    from push.outbox import OutboxWorker

    app = initialize_test_app()
    engine = make_engine(spec["database"])
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(PushOutbox)
                                  .where(PushOutbox.status == OutboxStatus.pending)).scalar_one()
    worker = OutboxWorker(engine, FcmSender(app), worker_id="bench", batch_size=spec["concurrency"],
                          lease_seconds=60, poll_seconds=0.5)
    finished = asyncio.Event()
    processed = 0
    failures = 0
    process = worker.process

    async def counted(row: Any) -> Any:
        nonlocal processed, failures
        settlement = await process(row)
        processed += 1
        failures += settlement.status is not OutboxStatus.sent
        if processed == rows:
            finished.set()
        return settlement

    worker.process = counted  # type: ignore[method-assign]  # counts rows without polling the database

    await _warm_up(app)
    rss_before, _ = _rss_kib()
    cpu = time.process_time()
    started = time.perf_counter()
    running = asyncio.create_task(worker.run())
    await finished.wait()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    worker.stop()
    await running
    await adelete_test_app(app)
    engine.dispose()
    return {"seconds": elapsed, "cpu": cpu, "failures": failures, "rows": rows, "rss_before_kib": rss_before,
            "peak_rss_kib": _rss_kib()[1]}


async def _warm_up(app: Any) -> None:
    """One message first, so TLS and HTTP/2 set-up and the SDK's lazy imports are not timed."""
    from firebase_admin import messaging

    from push.fcm import build_template, token_messages

    template = build_template(notification_id=NOTIFICATION_ID, severity="warning")
    await messaging.send_each_async(token_messages(["warm-up"], template), app=app)


def _child_main(kind: str, spec_json: str) -> int:
    """Entry point of a measuring child: point the SDK at the fake, run, print one JSON line."""
    from plugins.fakes.firebase import point_messaging_at

    spec = json.loads(spec_json)
    warnings.simplefilter("ignore", DeprecationWarning)
    with point_messaging_at(spec["fcm_url"]):
        result = asyncio.run(_bare(spec) if kind == "bare" else _outbox(spec))
    print(json.dumps(result), flush=True)
    return 0


def _fake_main(tls_dir: str) -> int:
    """Entry point of the fake FCM child: serve, answer ``stats``/``reset`` lines on stdin, stop at EOF."""
    from plugins.fakes.firebase import Http2Fcm

    fake = Http2Fcm(tls_dir)
    fake.start()
    print(json.dumps({"url": fake.base_url, "cert": fake.cert_file}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            print(json.dumps(fake.stats()), flush=True)
        elif command == "reset":
            fake.reset()
            print("{}", flush=True)
    fake.stop()
    return 0


# --------------------------------------------------------------------------------------------------
# The parent


class FakeProcess:
    """The HTTP/2 fake FCM in a process of its own."""

    def __init__(self, tls_dir: Path, module: str = "bench.bench_push") -> None:
        # ``module`` serves the fake with its ``_fake`` entry point (bench_flood_night's records topic times).
        self.proc = subprocess.Popen([sys.executable, "-m", module, "_fake", str(tls_dir)],
                                     cwd=ROOT, env=child_env({}), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        first = self.proc.stdout.readline() if self.proc.stdout else ""
        if not first:
            raise BenchError("the fake FCM did not start")
        info = json.loads(first)
        self.url, self.cert = info["url"], info["cert"]

    def ask(self, command: str) -> dict[str, Any]:
        """Send one command line, read one JSON answer."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def cpu(self) -> float:
        """CPU seconds the fake has used so far."""
        return process_cpu_seconds(self.proc.pid) or 0.0

    def close(self) -> None:
        """Stop the fake."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def prepare_database(path: Path, messages: int) -> dict[str, float]:
    """A migrated SQLite file holding one notification and its outbox rows (500 tokens each)."""
    from sqlmodel import Session

    from config import Settings
    from core.app import discover
    from core.db import make_engine
    from core.migrate import upgrade
    from push.models import Notification
    from push.outbox import enqueue_tokens

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine, discover(Settings(database_url=url, env="test", miniapps=[], load_entry_points=False)))
    started = time.perf_counter()
    with Session(engine) as db:
        db.add(Notification(id=NOTIFICATION_ID, miniapp="core", topic="bench", title_vi="t", title_en="t",
                            body_vi="b", body_en="b"))
        db.flush()
        enqueue_tokens(db, notification_id=NOTIFICATION_ID, severity="warning", tokens=_tokens("outbox", messages))
        db.commit()
    enqueue_seconds = time.perf_counter() - started
    engine.dispose()
    return {"enqueue_seconds": enqueue_seconds}


def run_child(kind: str, spec: dict[str, Any], fake: FakeProcess) -> dict[str, Any]:
    """One measured run in a fresh process; checks that FCM accepted every message exactly once."""
    fake.ask("reset")
    fake_cpu = fake.cpu()
    done = subprocess.run([sys.executable, "-m", "bench.bench_push", "_run", kind, json.dumps(spec)],
                          cwd=ROOT, env=child_env({"SSL_CERT_FILE": fake.cert}), capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"the {kind} run failed (exit {done.returncode}):\n{done.stdout}{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stats = fake.ask("stats")
    result["fake_cpu"] = fake.cpu() - fake_cpu
    expected = spec["messages"] + 1  # and the warm-up message
    if result["failures"] or stats["accepted"] != expected or stats["duplicated_targets"]:
        raise BenchError(f"the {kind} run did not deliver every message exactly once: {result} {stats}")
    result["throughput"] = spec["messages"] / result["seconds"]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; 0 unless the benchmark itself failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_push", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per run (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="batches of 500 in flight, the same for both (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, ABBA order; the report shows medians (default %(default)s)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-push-"))
    fake: FakeProcess | None = None
    try:
        print(f"preparing: a SQLite outbox of {args.messages} tokens ...", flush=True)
        template = workdir / "template.db"
        prepared = prepare_database(template, args.messages)
        fake = FakeProcess(workdir / "tls")
        results: dict[str, list[dict[str, Any]]] = {"bare": [], "outbox": []}
        for round_no in range(args.rounds):
            order = ["bare", "outbox"] if round_no % 2 == 0 else ["outbox", "bare"]
            for kind in order:
                database = workdir / f"run-{round_no}.db"
                shutil.copy(template, database)
                spec = {"messages": args.messages, "concurrency": args.concurrency, "fcm_url": fake.url,
                        "prefix": f"bare-{round_no}", "database": f"sqlite:///{database}"}
                result = run_child(kind, spec, fake)
                results[kind].append(result)
                print(f"round {round_no + 1}: {kind:<7} {result['throughput']:8.0f} msg/s "
                      f"({result['seconds']:.1f} s, client cpu {result['cpu'] / result['seconds']:.2f}, "
                      f"fake cpu {result['fake_cpu'] / result['seconds']:.2f})", flush=True)
                database.unlink(missing_ok=True)
    except BenchError as exc:
        print(f"bench_push: could not measure: {exc}", file=sys.stderr)
        return 2
    finally:
        if fake is not None:
            fake.close()
        shutil.rmtree(workdir, ignore_errors=True)

    report(results, prepared, args)
    return 0


def report(results: dict[str, list[dict[str, Any]]], prepared: dict[str, float], args: argparse.Namespace) -> None:
    """Print medians, the throughput ratio against the bare loop (and per CPU second), and peak memory."""
    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    def per_cpu(kind: str) -> float:
        return statistics.median(args.messages / r["cpu"] for r in results[kind])

    base, base_per_cpu = median("bare", "throughput"), per_cpu("bare")
    print()
    print(f"Push: {args.messages} targeted messages through firebase-admin to the HTTP/2 fake FCM, "
          f"{args.concurrency} batches of 500 in flight, {args.rounds} round(s), medians")
    print(f"{'run':<8} {'msg/s':>8} {'throughput ratio':>22} {'msg/cpu-s':>10} {'per-cpu ratio':>14} "
          f"{'client cpu':>11} {'fake cpu':>9} {'peak rss':>9} {'rss growth':>11}")
    for kind in ("bare", "outbox"):
        rate = median(kind, "throughput")
        ratio = rate / base
        if kind == "bare":
            cell, cpu_cell = "1.00 (baseline)", "1.00"
        else:
            cell = f"{ratio:.2f} {'PASS' if ratio >= THROUGHPUT_FLOOR else 'BELOW'} (>={THROUGHPUT_FLOOR:.2f})"
            cpu_cell = f"{per_cpu(kind) / base_per_cpu:.2f}"
        peak = median(kind, "peak_rss_kib") / 1024
        growth = statistics.median(r["peak_rss_kib"] - r["rss_before_kib"] for r in results[kind]) / 1024
        print(f"{kind:<8} {rate:8.0f} {cell:>22} {per_cpu(kind):10.0f} {cpu_cell:>14} "
              f"{median(kind, 'cpu') / median(kind, 'seconds'):11.2f} "
              f"{median(kind, 'fake_cpu') / median(kind, 'seconds'):9.2f} {peak:8.0f}M {growth:10.0f}M")
    print()
    print("per round (msg/s): " + "; ".join(
        f"{kind} " + " ".join(f"{r['throughput']:.0f}" for r in results[kind]) for kind in ("bare", "outbox")))
    print(f"enqueue (not timed above): {args.messages} tokens into {-(-args.messages // 500)} outbox rows in "
          f"{prepared['enqueue_seconds']:.1f} s")
    print("peak rss = the sending process's peak resident memory (VmHWM); rss growth = peak minus RSS just "
          "before sending.")
    print("client cpu = cores the sending process used while timed (1.00 = one core busy); msg/cpu-s = "
          "messages per CPU second of it, steadier than msg/s when neighbours take CPU. A fake well below "
          "the client means the client, not the fake, sets the pace.")
    starved = [r["cpu"] / r["seconds"] for kind in results for r in results[kind] if r["cpu"] / r["seconds"] < 0.85]
    if starved:
        print(f"warning: in {len(starved)} run(s) the sender got less than 0.85 of a core (another process "
              "competed for the CPU): trust the per-cpu ratio more, or run again with more --rounds")
    spread = [max(r["throughput"] for r in results[k]) / min(r["throughput"] for r in results[k]) - 1
              for k in results if len(results[k]) > 1]
    if spread and max(spread) > 0.15:
        print(f"warning: rounds of one run differ by up to {max(spread):.0%}; the machine was noisy")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "_run":
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    if len(sys.argv) >= 3 and sys.argv[1] == "_fake":
        sys.exit(_fake_main(sys.argv[2]))
    sys.exit(main())
