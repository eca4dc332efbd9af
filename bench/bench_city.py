"""Notifications at Hue's real size: accepting, planning, delivering, and reading the inbox, as ratios.

Runs against a database holding the synthetic city (``python -m bench.city --url URL``: 1.3 million
residents, 900,000 devices, two years of notification history) and a small one made here (the demo
units and a few residents), both on PostgreSQL. Four parts, each printing its figures against a
baseline measured in the same run:

1. **accept**: an operator's ``POST /api/notifications`` to the whole city, to the largest ward and to
   a small commune, served by the product (uvicorn, push worker off), timed per request; the rows each
   notice writes are counted. Baseline: the same POST on the small database.
2. **plan**: the outbox worker's push planning (``push.planner.plan``) for the city-wide notice and
   the ward notice, each in a fresh process: seconds, devices planned, rows written and peak RSS.
   Baseline: streaming the same device ids with a bare server-side cursor (no judging, no writing).
3. **deliver**: ``devices`` rows planned in part 2 (tokens looked up when sending) drained by one
   ``OutboxWorker`` through firebase-admin to the loopback HTTP/2 fake FCM, against a bare
   firebase-admin loop sending as many messages (``bench.bench_push``'s baseline). From the worker's
   rate: how many workers bring a city-wide notice to 900,000 devices within 3 minutes.
4. **inbox**: ``GET /api/inbox`` and ``GET /api/inbox/badge`` for a resident of the largest ward on
   the city database and on the small one, against the bare endpoint (``bench.harness.compare``).

A report, not a test: it exits 0 whatever the ratios, non-zero only when it could not measure. The
notices it sends are deleted again at the end (with their audiences and outbox rows).

    python -m bench.bench_city --url postgresql://postgres@127.0.0.1:5432/city_full [--parts accept,plan,deliver,inbox]
        [--deliver-messages N] [--seconds S] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from bench.harness import (
    BENCH_SECRET_KEY,
    ROOT,
    BenchError,
    RunningServer,
    Server,
    Target,
    add_load_arguments,
    child_env,
    compare,
    migrate_and_seed,
    report,
    settings_from,
    start_server,
)

PARTS = ("accept", "plan", "deliver", "inbox")
ACCEPT_CEILING_S = 0.1
PLAN_CEILING_S = 60.0
PLAN_RSS_CEILING_MIB = 300
DELIVERY_FLOOR = 0.8
INBOX_FLOOR = 0.5
INBOX_P99_CEILING = 1.5  # city p99 over small-database p99
CITY_DEVICES = 900_000
DELIVERY_WINDOW_S = 180
FCM_QUOTA_PER_MINUTE = 600_000
SENDS = 20  # POSTs per audience in the accept part; the verdict is on the 90th percentile
SMALL_RESIDENTS = 200
BENCH_URL = "/bench/city-notice/"  # each notice's link, so the clean-up finds exactly ours


# --------------------------------------------------------------------------------------------------
# Databases


def _engine(url: str) -> Engine:
    return create_engine(url, future=True)


def small_database(city_url: str) -> str:
    """A fresh small PostgreSQL database beside the city's: demo units and accounts, a few residents."""
    parsed = make_url(city_url)
    name = f"{parsed.database}_small"
    admin = _engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = parsed.set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-city-small-"))
    migrate_and_seed(child_env(_server_env(url)), workdir)
    engine = _engine(url)
    with engine.begin() as connection:
        ward = _largest_ward(connection)
        connection.execute(text(
            "INSERT INTO user_account (kind, display_name, phone, home_unit_id, home_unit_since, "
            "notification_prefs, is_active, created_at) SELECT 'resident', 'Cư dân ' || n, '+8490' || "
            "lpad(n::text, 7, '0'), :ward, now() - interval '1 year', '{}', true, now() - interval '1 year' "
            "FROM generate_series(1, :count) AS n"), {"ward": ward, "count": SMALL_RESIDENTS})
    engine.dispose()
    return url


def _largest_ward(connection: Any) -> str:
    """The ward with the most residents (on the small database: the first ward)."""
    row = connection.execute(text(
        "SELECT u.id FROM org_unit u LEFT JOIN user_account a ON a.home_unit_id = u.id AND a.kind = 'resident' "
        "WHERE u.kind = 'ward' GROUP BY u.id ORDER BY count(a.id) DESC, u.id LIMIT 1")).first()
    return str(row[0])


def _smallest_commune(connection: Any) -> str:
    return str(connection.execute(text(
        "SELECT u.id FROM org_unit u LEFT JOIN user_account a ON a.home_unit_id = u.id AND a.kind = 'resident' "
        "WHERE u.kind = 'commune' GROUP BY u.id ORDER BY count(a.id), u.id LIMIT 1")).scalar_one())


def _residents_of(connection: Any, unit_id: str) -> int:
    return int(connection.execute(text(
        "SELECT count(*) FROM user_account WHERE kind = 'resident' AND home_unit_id = :u"), {"u": unit_id})
        .scalar_one())


def _token_for(url: str, *, username: str | None = None, unit: str | None = None) -> str:
    """An access token signed with the bench secret, for a demo official or a resident of ``unit``."""
    from sqlmodel import Session, select

    from core.identity.models import User, UserKind
    from core.identity.service import start_session

    engine = _engine(url)
    with Session(engine) as db:
        query = select(User).where(User.username == username) if username else select(User).where(
            User.kind == UserKind.resident, User.home_unit_id == unit).order_by(User.id).limit(1)
        user = db.exec(query).one()
        pair = start_session(db, secret=BENCH_SECRET_KEY, user=user, method="bench", client=None, address=None)
        db.commit()
    engine.dispose()
    return pair.access_token


def _server_env(url: str) -> dict[str, str]:
    return {"SUPERAPP_DATABASE_URL": url, "SUPERAPP_ENV": "test", "SUPERAPP_SECRET_KEY": BENCH_SECRET_KEY,
            "SUPERAPP_LOG_LEVEL": "WARNING", "SUPERAPP_SCHEDULER_ENABLED": "false",
            "SUPERAPP_PUSH_WORKER_ENABLED": "false"}


def _product(url: str, name: str) -> Server:
    """The product on an existing database (already migrated and loaded: nothing to prepare)."""
    server = Server.product(env=_server_env(url), prepare=lambda env, workdir: None)
    server.name = name
    return server


def _table_counts(connection: Any) -> dict[str, int]:
    return {table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("notification", "notification_audience", "inbox_item", "push_outbox")}


def clean_up(url: str) -> int:
    """Delete the notices this benchmark sent (cascading to their audiences and outbox rows)."""
    engine = _engine(url)
    with engine.begin() as connection:
        deleted = connection.execute(text("DELETE FROM notification WHERE url LIKE :mark"),
                                     {"mark": f"{BENCH_URL}%"}).rowcount
    engine.dispose()
    return deleted


# --------------------------------------------------------------------------------------------------
# 1. accept


def _post(running: RunningServer, token: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    import http.client

    payload = json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/api/notifications", body=payload,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 202:
        raise BenchError(f"POST /api/notifications answered {response.status}: {answer[:300]!r}")
    return elapsed, json.loads(answer)


def _notice(audience: dict[str, Any], n: int) -> dict[str, Any]:
    return {"title": {"vi": f"Thông báo thử {n}", "en": f"Test notice {n}"},
            "body": {"vi": "Nội dung thử nghiệm của bài đo.", "en": "A benchmark's test content."},
            "url": f"{BENCH_URL}{n}", **audience}


def accept(city_url: str, small_url: str) -> dict[str, Any]:
    """Time the operator's POST for three audiences on the city and on the small database; count rows."""
    out: dict[str, Any] = {}
    for label, url in (("city db", city_url), ("small db", small_url)):
        engine = _engine(url)
        with engine.connect() as connection:
            ward, commune = _largest_ward(connection), _smallest_commune(connection)
            reach = {"city": int(connection.execute(text(
                "SELECT count(*) FROM user_account WHERE kind = 'resident'")).scalar_one()),
                "ward": _residents_of(connection, ward), "commune": _residents_of(connection, commune)}
        token = _token_for(url, username="operator.demo")
        audiences = {"city": {"city": True}, "ward": {"units": [ward]}, "commune": {"units": [commune]}}
        with tempfile.TemporaryDirectory(prefix="bench-city-accept-") as workdir, \
                start_server(_product(url, f"accept-{label}"), Path(workdir)) as running:
            _post(running, token, _notice(audiences["commune"], 0))  # first request: imports, pools
            for kind, audience in audiences.items():
                with engine.connect() as connection:
                    before = _table_counts(connection)
                times = []
                for n in range(SENDS):
                    elapsed, receipt = _post(running, token, _notice(audience, n))
                    times.append(elapsed)
                with engine.connect() as connection:
                    after = _table_counts(connection)
                times.sort()
                out[(label, kind)] = {"p50": statistics.median(times), "p90": times[int(len(times) * 0.9) - 1],
                                      "max": times[-1], "reach": reach[kind],
                                      "rows": {t: (after[t] - before[t]) / SENDS for t in after},
                                      "notification_id": receipt["notification_id"]}
        with engine.begin() as connection:
            # Only the last notice of each audience is planned (part 2); nobody else may pick the others up.
            connection.execute(text(
                "UPDATE push_outbox SET status = 'sent' WHERE status = 'pending' AND notification_id IN "
                "(SELECT id FROM notification WHERE url LIKE :mark) AND notification_id <> ALL(:keep)"),
                {"mark": f"{BENCH_URL}%", "keep": [out[(label, k)]["notification_id"] for k in audiences]})
        engine.dispose()
    return out


def print_accept(results: dict[Any, Any]) -> None:
    """The accept table: latency per audience, against the small database, and rows per notice."""
    print("\n1. Accepting a notice (POST /api/notifications as an operator, push worker off), "
          f"{SENDS} sends per audience")
    print(f"{'audience':<9} {'residents':>10} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'small db p50':>13} {'ratio':>6} "
          f"{'verdict':<22} rows written per notice")
    for kind in ("city", "ward", "commune"):
        big, small = results[("city db", kind)], results[("small db", kind)]
        verdict = "PASS" if big["p90"] < ACCEPT_CEILING_S else "ABOVE"
        rows = ", ".join(f"{t} {v:g}" for t, v in big["rows"].items())
        print(f"{kind:<9} {big['reach']:>10} {big['p50'] * 1000:8.1f} {big['p90'] * 1000:8.1f} {big['max'] * 1000:8.1f} "
              f"{small['p50'] * 1000:13.1f} {big['p50'] / small['p50']:6.2f} "
              f"{verdict + f' (p90 <{ACCEPT_CEILING_S * 1000:.0f} ms)':<22} {rows}")
    print("ratio = city-database p50 / small-database p50 (1.00 = the city's size costs the sender nothing).")


# --------------------------------------------------------------------------------------------------
# 2. plan (children)


def _plan_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: lease the notice's plan row and plan it, or stream the bare cursor."""
    from sqlalchemy import select, update

    from core.db import make_engine
    from push.models import OutboxKind, PushOutbox
    from push.planner import PLAN_BATCH, audience_filter, plan

    engine = make_engine(spec["url"])
    started = time.perf_counter()
    if spec["kind"] == "bare":
        from core.identity.models import User
        from push.models import Device

        with engine.connect() as connection:
            who = audience_filter(connection, spec["notification_id"], units_by_topic=False)
        query = (select(Device.id, User.notification_prefs).join(User, User.id == Device.user_id)
                 .where(Device.active, User.is_active, who).order_by(Device.id))
        devices = 0
        with engine.connect() as reader:
            result = reader.execution_options(stream_results=True, yield_per=PLAN_BATCH).execute(query)
            for batch in result.partitions(PLAN_BATCH):
                devices += len(batch)
        totals = {"devices": devices, "jobs": 0}
    else:
        with engine.begin() as connection:
            row = connection.execute(select(PushOutbox.id, PushOutbox.payload).where(
                PushOutbox.notification_id == spec["notification_id"], PushOutbox.kind == OutboxKind.plan)).one()
            connection.execute(update(PushOutbox).where(PushOutbox.id == row.id).values(leased_by="bench-plan"))
        from core.identity.models import utcnow

        progress = plan(engine, row_id=row.id, notification_id=spec["notification_id"], payload=dict(row.payload),
                        worker_id="bench-plan", clock=utcnow)
        with engine.begin() as connection:
            connection.execute(update(PushOutbox).where(PushOutbox.id == row.id)
                               .values(status="sent", leased_by=None))
        totals = progress.as_dict()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"seconds": elapsed, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **totals}


def _run_child(args: list[str], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.bench_city", *args], cwd=ROOT,
                          env=child_env(extra_env or {}), capture_output=True, text=True, timeout=3600)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"child {args[:2]} failed (exit {done.returncode}):\n{done.stdout}{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan_part(city_url: str, accepted: dict[Any, Any]) -> dict[str, Any]:
    """Plan the city-wide and the ward notice sent in part 1, each beside a bare cursor over the same devices."""
    out = {}
    for kind in ("city", "ward"):
        notification_id = accepted[("city db", kind)]["notification_id"]
        spec = {"url": city_url, "notification_id": notification_id}
        bare = _run_child(["_plan", json.dumps({**spec, "kind": "bare"})])
        planned = _run_child(["_plan", json.dumps({**spec, "kind": "plan"})])
        out[kind] = {"bare": bare, "plan": planned, "notification_id": notification_id}
    return out


def print_plan(results: dict[str, Any]) -> None:
    """The planning table."""
    print("\n2. Planning push in the outbox worker (devices streamed from a server-side cursor, 500 at a time)")
    print(f"{'notice':<7} {'devices':>8} {'rows':>6} {'muted':>6} {'held':>6} {'seconds':>8} {'bare s':>7} "
          f"{'ratio':>6} {'peak RSS':>9} verdict")
    for kind, r in results.items():
        plan, bare = r["plan"], r["bare"]
        rss = plan["peak_rss_kib"] / 1024
        ok = plan["seconds"] < PLAN_CEILING_S and rss < PLAN_RSS_CEILING_MIB
        print(f"{kind:<7} {plan['devices']:>8} {plan['jobs']:>6} {plan['muted']:>6} {plan['held']:>6} "
              f"{plan['seconds']:8.1f} {bare['seconds']:7.1f} {bare['seconds'] / plan['seconds']:6.2f} "
              f"{rss:8.0f}M {'PASS' if ok else 'ABOVE'} (<{PLAN_CEILING_S:.0f} s, <{PLAN_RSS_CEILING_MIB} MiB)")
    print("ratio = bare cursor seconds / planning seconds (1.00 = planning costs no more than reading the rows).")


# --------------------------------------------------------------------------------------------------
# 3. deliver


def _deliver_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one OutboxWorker drains the kept ``devices`` rows through firebase-admin."""
    import asyncio
    import warnings

    from bench.bench_push import _rss_kib, _warm_up
    from core.db import make_engine
    from plugins.fakes.firebase import adelete_test_app, initialize_test_app, point_messaging_at
    from push.fcm import FcmSender
    from push.models import OutboxStatus
    from push.outbox import OutboxWorker

    warnings.simplefilter("ignore", DeprecationWarning)

    async def run() -> dict[str, Any]:
        app = initialize_test_app()
        engine = make_engine(spec["url"])
        worker = OutboxWorker(engine, FcmSender(app), worker_id=f"bench-{spec['index']}",
                              batch_size=spec["concurrency"], lease_seconds=120, poll_seconds=0.2)
        process, processed, failures = worker.process, 0, 0
        finished = asyncio.Event()

        async def counted(row: Any) -> Any:
            nonlocal processed, failures
            settlement = await process(row)
            processed += 1
            failures += settlement.status is not OutboxStatus.sent
            return settlement

        worker.process = counted  # type: ignore[method-assign]
        await _warm_up(app)
        cpu, started = time.process_time(), time.perf_counter()
        running = asyncio.create_task(worker.run())
        while True:  # until no pending row of ours is left
            await asyncio.sleep(0.2)
            if await asyncio.to_thread(_pending, engine, spec["notification_id"]) == 0:
                finished.set()
                break
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        worker.stop()
        await running
        await adelete_test_app(app)
        engine.dispose()
        return {"seconds": elapsed, "cpu": cpu, "rows": processed, "failures": failures,
                "peak_rss_kib": _rss_kib()[1]}

    with point_messaging_at(spec["fcm_url"]):
        return asyncio.run(run())


def _pending(engine: Engine, notification_id: int) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(
            "SELECT count(*) FROM push_outbox WHERE notification_id = :n AND status = 'pending' "
            "AND kind = 'devices'"), {"n": notification_id}).scalar_one())


def deliver_part(city_url: str, planned: dict[str, Any], messages: int, concurrency: int,
                 rounds: int) -> dict[str, Any]:
    """Keep ``messages`` devices of the city-wide plan, then bare loop vs worker(s), interleaved."""
    from bench.bench_push import FakeProcess, run_child

    notification_id = planned["city"]["notification_id"]
    engine = _engine(city_url)
    with engine.begin() as connection:
        # Every planned row of the benchmark's notices is set aside (sent); the first ``messages`` devices
        # of the city-wide notice are made pending again before each run, so every run sends the same.
        connection.execute(text(
            "UPDATE push_outbox SET status = 'sent' WHERE status = 'pending' AND notification_id IN "
            "(SELECT id FROM notification WHERE url LIKE :mark)"), {"mark": f"{BENCH_URL}%"})
        rows = connection.execute(text(
            "SELECT id, json_array_length(payload->'devices') FROM push_outbox WHERE notification_id = :n "
            "AND kind = 'devices' ORDER BY id"), {"n": notification_id}).all()
        keep, count = [], 0
        for row_id, size in rows:
            if count >= messages:
                break
            keep.append(row_id)
            count += size
    workdir = Path(tempfile.mkdtemp(prefix="bench-city-fcm-"))
    fake = FakeProcess(workdir / "tls")
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "worker": [], "2 workers": []}
    try:
        for round_no in range(rounds):
            order = ["bare", "worker", "2 workers"] if round_no % 2 == 0 else ["2 workers", "worker", "bare"]
            for kind in order:
                if kind == "bare":
                    spec = {"messages": count, "concurrency": concurrency, "fcm_url": fake.url,
                            "prefix": f"city-{round_no}"}
                    results[kind].append(run_child("bare", spec, fake))
                    continue
                with engine.begin() as connection:
                    connection.execute(text(
                        "UPDATE push_outbox SET status = 'pending', attempts = 0, leased_by = NULL, "
                        "lease_until = NULL, next_attempt_at = now() WHERE id = ANY(:ids)"), {"ids": keep})
                fake.ask("reset")
                spec = {"url": city_url, "notification_id": notification_id, "concurrency": concurrency,
                        "fcm_url": fake.url}
                workers = 2 if kind == "2 workers" else 1
                procs = [subprocess.Popen(
                    [sys.executable, "-m", "bench.bench_city", "_deliver", json.dumps({**spec, "index": i})],
                    cwd=ROOT, env=child_env({"SSL_CERT_FILE": fake.cert}), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True) for i in range(workers)]
                outs = []
                for proc in procs:
                    stdout, stderr = proc.communicate(timeout=3600)
                    if proc.returncode != 0:
                        raise BenchError(f"delivery child failed: {stderr[-3000:]}")
                    outs.append(json.loads(stdout.strip().splitlines()[-1]))
                stats = fake.ask("stats")
                if any(o["failures"] for o in outs) or stats["targets"] < count:
                    raise BenchError(f"delivery lost messages: {outs} {stats}")
                seconds = max(o["seconds"] for o in outs)
                # At least once: a send that timed out on a loaded machine is retried, and FCM may have
                # taken the first one too; those repeats are counted, not hidden.
                results[kind].append({"seconds": seconds, "throughput": count / seconds,
                                      "cpu": sum(o["cpu"] for o in outs), "accepted": stats["accepted"],
                                      "repeated": stats["duplicated_targets"],
                                      "peak_rss_kib": max(o["peak_rss_kib"] for o in outs)})
    finally:
        fake.close()
        engine.dispose()
    return {"messages": count, "results": results}


def print_deliver(outcome: dict[str, Any], concurrency: int) -> None:
    """The delivery table and the worker count a 3-minute city-wide delivery needs."""
    results = outcome["results"]
    base = statistics.median(r["throughput"] for r in results["bare"])
    print(f"\n3. Delivering {outcome['messages']} messages of the city-wide notice through firebase-admin to the "
          f"loopback HTTP/2 fake FCM ({concurrency} batches of 500 in flight per process), medians")
    print(f"{'run':<10} {'msg/s':>8} {'ratio':>6} {'repeats':>8} verdict")
    for kind in ("bare", "worker", "2 workers"):
        rate = statistics.median(r["throughput"] for r in results[kind])
        repeats = sum(r.get("repeated", 0) for r in results[kind])
        verdict = "baseline" if kind == "bare" else (
            f"{'PASS' if rate / base >= DELIVERY_FLOOR else 'BELOW'} (>={DELIVERY_FLOOR})" if kind == "worker"
            else "two processes sharing the leased outbox")
        print(f"{kind:<10} {rate:8.0f} {rate / base:6.2f} {repeats:>8} {verdict}")
    print("repeats = messages FCM received twice (a send timed out and was retried: at least once, never lost).")
    per_worker = statistics.median(r["throughput"] for r in results["worker"])
    needed = math.ceil(CITY_DEVICES / (per_worker * DELIVERY_WINDOW_S))
    quota = FCM_QUOTA_PER_MINUTE / 60
    print(f"one worker (one core) sends {per_worker:.0f} msg/s: {CITY_DEVICES} devices take "
          f"{CITY_DEVICES / per_worker / 60:.1f} worker-minutes; {needed} push workers (one core each) deliver a "
          f"city-wide notice within {DELIVERY_WINDOW_S // 60} minutes ({CITY_DEVICES / needed / per_worker:.0f} s), "
          f"under FCM's default quota of {quota:.0f} msg/s ({needed * per_worker:.0f} msg/s).")


# --------------------------------------------------------------------------------------------------
# 4. inbox


def inbox_part(city_url: str, small_url: str, settings: Any) -> Any:
    """Inbox page and badge for a resident of the largest ward, city vs small database vs bare."""
    engines = [_engine(city_url), _engine(small_url)]
    wards = []
    for engine in engines:
        with engine.connect() as connection:
            wards.append(_largest_ward(connection))
        engine.dispose()
    tokens = [_token_for(city_url, unit=wards[0]), _token_for(small_url, unit=wards[1])]
    city, small = _product(city_url, "city"), _product(small_url, "small")
    targets = []
    for label, server, token in (("city", city, tokens[0]), ("small", small, tokens[1])):
        headers = {"Authorization": f"Bearer {token}"}
        targets += [Target(f"inbox {label}", server, "/api/inbox?limit=20", headers),
                    Target(f"badge {label}", server, "/api/inbox/badge", headers)]
    return compare(Target("bare", Server.bare(), "/bare"), targets=targets, settings=settings)


def print_inbox(comparison: Any) -> None:
    """The harness table, then p99 at city size over p99 on the small database."""
    print()
    report(comparison, title="4. A resident's inbox and unread badge, largest ward, city vs small database",
           rps_floor=INBOX_FLOOR)
    by_label = {m.target.label: m for m in comparison.targets}
    for what in ("inbox", "badge"):
        ratio = by_label[f"{what} city"].p99_ms / by_label[f"{what} small"].p99_ms
        print(f"{what}: p99 at city size / p99 on the small database = {ratio:.2f} "
              f"{'PASS' if ratio <= INBOX_P99_CEILING else 'ABOVE'} (<={INBOX_P99_CEILING})")


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts asked for and print their tables; 0 unless the benchmark itself failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_city", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="PostgreSQL URL of a database loaded by bench.city")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)}")
    parser.add_argument("--deliver-messages", type=int, default=50_000, help="messages per delivery run")
    parser.add_argument("--deliver-concurrency", type=int, default=4, help="batches of 500 in flight per worker")
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if ("plan" in parts or "deliver" in parts) and "accept" not in parts:
        print("error: plan and deliver use the notices the accept part sends; add accept", file=sys.stderr)
        return 2
    if make_url(args.url).get_backend_name() != "postgresql":
        print("error: --url must be a PostgreSQL database loaded by `python -m bench.city`", file=sys.stderr)
        return 2
    try:
        print("preparing the small database ...", file=sys.stderr, flush=True)
        small_url = small_database(args.url)
        accepted = planned = None
        if "accept" in parts:
            accepted = accept(args.url, small_url)
            print_accept(accepted)
        if "plan" in parts:
            planned = plan_part(args.url, accepted)
            print_plan(planned)
        if "deliver" in parts and planned is not None:
            print_deliver(deliver_part(args.url, planned, args.deliver_messages, args.deliver_concurrency,
                                       args.rounds), args.deliver_concurrency)
        if "inbox" in parts:
            print_inbox(inbox_part(args.url, small_url, settings_from(args)))
    except BenchError as exc:
        print(f"bench_city: could not measure: {exc}", file=sys.stderr)
        return 2
    finally:
        print(f"\ncleaned up {clean_up(args.url)} benchmark notice(s)", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_plan":
        print(json.dumps(_plan_child(json.loads(sys.argv[2]))), flush=True)
        sys.exit(0)
    if len(sys.argv) >= 3 and sys.argv[1] == "_deliver":
        print(json.dumps(_deliver_child(json.loads(sys.argv[2]))), flush=True)
        sys.exit(0)
    sys.exit(main())
