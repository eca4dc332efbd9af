"""Field reports: filing a report with two 3 MB photos, and a unit's queue of 100,000 reports with filters,
each against the bare endpoint in the same run; and photo processing time per MB.

Issue targets (reported, no bound stated): requests per second and p99 of ``POST
/api/miniapps/feedback/reports`` with two ~3 MB JPEGs, and of ``GET /api/miniapps/feedback/queue``
filtered (state, category, overdue) over a unit holding 100,000 reports, each beside bare FastAPI
``GET /bare`` driven the same way; the time ``core.media.process_photo`` takes per MB of upload.

1. Queue: the harness drives ``/bare`` and two queue requests (Phú Xuân's official, an operator with
   a unit filter) interleaved, on a product whose database holds 100,000 Phú Xuân reports.
2. Filing: a thread pool posts the multipart form (two photos) for ``--seconds`` at
   ``--upload-concurrency``, interleaved with the same pool getting ``/bare``.
3. Photos: ``process_photo`` timed in this process on the same 3 MB JPEG.

    python -m bench.bench_feedback [--seconds S] [--concurrency C] [--rounds R] [--upload-concurrency N]

City size (``--city URL``): a PostgreSQL (or SQLite) database with two years of Hue's reports (360,000 at
``--scale 1``) made by ``bench.city`` (residents first, then ``bench.city.feedback``), or reused when it
holds them already. The officials' queue (first page, filters, a keyset page), the dashboard, the public
map layers and the Open311 listing are driven against ``/bare``; then each is asked again with a query
no answer is cached for (the cost after a report changed), and the whole reports CSV export is streamed
once with the server's memory before and after.

    python -m bench.bench_feedback --city postgresql://postgres@127.0.0.1:5432/fb_city [--scale 1.0] [--maps-only]

The map layers are asked with ``Accept-Encoding: gzip``, as browsers and phones ask ("map plain": without).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import (
    BENCH_SECRET_KEY,
    HOST,
    ROOT,
    BenchError,
    Comparison,
    RunningServer,
    Server,
    Target,
    add_load_arguments,
    child_env,
    compare,
    migrate_and_seed,
    percentile,
    process_memory_kib,
    report,
    settings_from,
    start_server,
    superapp_command,
)

QUEUE_REPORTS = 100_000
PHOTO_BYTES = 3 * 1024 * 1024

# Runs in the product's environment (its database): 100,000 Phú Xuân reports in mixed states and categories.
LOAD_QUEUE = r"""
import sys
from datetime import UTC, datetime, timedelta
from sqlmodel import Session
from config import load_settings
from core.db import make_engine
from miniapps.feedback import service
from miniapps.feedback.models import FeedbackReport
count = int(sys.argv[1])
settings = load_settings()
engine = make_engine(settings.sqlalchemy_url)
states = ["submitted", "accepted", "in_progress", "resolved", "closed"]
categories = ["public-order", "flooding", "trees", "other"]
now = datetime.now(UTC)
with Session(engine) as db:
    service.load_categories(db)
table = FeedbackReport.__table__
with engine.begin() as conn:
    batch = []
    for n in range(count):
        created = now - timedelta(minutes=n)
        batch.append({"token": f"bench{n:027d}", "category_id": categories[n % 4], "description": f"Báo cáo {n}",
                      "lat": 16.478 + (n % 100) * 1e-5, "lon": 107.577, "unit_id": "phu-xuan",
                      "handling_unit_id": "phu-xuan", "state": states[n % 5], "urgent": n % 50 == 0,
                      "source": "app", "created_at": created, "updated_at": created,
                      "due_at": created + timedelta(days=3), "search_text": f"bao cao {n}"})
        if len(batch) == 5000:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
print("loaded")
"""

TOKEN = r"""
import sys
from sqlmodel import Session, select
from config import load_settings
from core.db import make_engine
from core.identity import service
from core.identity.models import User
who = sys.argv[1]
settings = load_settings()
engine = make_engine(settings.sqlalchemy_url)
with Session(engine, expire_on_commit=False) as db:
    column = User.phone if who.startswith("+") else User.username
    user = db.exec(select(User).where(column == who)).one()
    pair = service.start_session(db, secret=settings.secret_key, user=user, method="bench", client="bench",
                                 address="127.0.0.1")
print(pair.access_token)
"""


def _python(script: str, *args: str, env: dict[str, str], cwd: Path, what: str, timeout: int = 1800) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"could not {what}: {done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _with_queue(env: dict[str, str], workdir: Path) -> None:
    migrate_and_seed(env, workdir)
    _python(LOAD_QUEUE, str(QUEUE_REPORTS), env=env, cwd=workdir, what="load 100,000 reports")


def bearer_of(who: str):
    """Headers with a fresh access token for a seeded account (username, or a resident's phone)."""
    def headers(running: RunningServer) -> dict[str, str]:
        token = _python(TOKEN, who, env=running.env, cwd=running.workdir, what=f"mint a token for {who}", timeout=60)
        return {"Authorization": f"Bearer {token}"}
    return headers


def three_mb_jpeg() -> bytes:
    """A photo-like JPEG of about 3 MB (noise over a gradient compresses like a busy street scene)."""
    from PIL import Image

    width = 1000
    while True:
        size = (width, width * 3 // 4)
        noise = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        image = Image.blend(noise, Image.linear_gradient("L").resize(size).convert("RGB"), 0.6)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        if len(out.getvalue()) >= PHOTO_BYTES * 0.95:
            return out.getvalue()
        width = int(width * 1.05)


def multipart(photos: list[bytes]) -> tuple[bytes, str]:
    """The report form with ``photos``, as a multipart body and its content type."""
    boundary = "benchfeedbackboundary7d91"
    parts = []
    for name, value in (("category_id", "public-order"), ("description", "Lấn chiếm vỉa hè (bench)"),
                        ("lat", "16.478"), ("lon", "107.577")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for n, photo in enumerate(photos):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p{n}.jpg"\r\n'
                     f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def drive(running: RunningServer, method: str, path: str, headers: dict[str, str], body: bytes | None,
          *, concurrency: int, seconds: float, warmup: float, expect: int) -> tuple[float, float, float, int]:
    """Keep-alive clients in threads for ``seconds`` after ``warmup``: (rps, p50 ms, p99 ms, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, running.port, timeout=120)
        while (now := time.perf_counter()) < stop_at:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            done = time.perf_counter()
            if now >= measure_from:
                with lock:
                    latencies.append((done - now) * 1000)
                    errors[0] += response.status != expect
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    if not ordered:
        raise BenchError(f"{method} {path}: no request finished within {seconds}s")
    return len(ordered) / seconds, percentile(ordered, 50), percentile(ordered, 99), errors[0]


def bench_filing(args: argparse.Namespace, photos: list[bytes]) -> None:
    """Part 2: POST a report with two 3 MB photos vs GET /bare, same clients, interleaved rounds."""
    body, content_type = multipart(photos)
    product = Server.product(env={"SUPERAPP_VAR_DIR": "{workdir}/var"})
    with ExitStack() as stack:
        running = {}
        for server in (Server.bare(), product):
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{server.name}-")))
            print(f"starting {server.name} ...", file=sys.stderr, flush=True)
            running[server.name] = stack.enter_context(start_server(server, workdir))
        token = bearer_of("+84905000001")(running["product"])
        post_headers = {**token, "Content-Type": content_type, "Content-Length": str(len(body))}
        targets = {
            "bare": (running["bare"], "GET", "/bare", {}, None, 200),
            "file report": (running["product"], "POST", "/api/miniapps/feedback/reports", post_headers, body, 201),
        }
        results: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in targets}
        for round_no in range(args.rounds):
            order = list(targets) if round_no % 2 == 0 else list(targets)[::-1]
            for name in order:
                server, method, path, headers, payload, expect = targets[name]
                result = drive(server, method, path, headers, payload, concurrency=args.upload_concurrency,
                               seconds=args.seconds, warmup=args.warmup, expect=expect)
                results[name].append(result)
                print(f"  round {round_no + 1}/{args.rounds}  {name:<12} {result[0]:8.1f} rps  p99 "
                      f"{result[2]:8.1f} ms  errors {result[3]}", file=sys.stderr, flush=True)
    median = {name: tuple(statistics.median(r[i] for r in runs) for i in range(3)) + (sum(r[3] for r in runs),)
              for name, runs in results.items()}
    bare, filing = median["bare"], median["file report"]
    print(f"POST /api/miniapps/feedback/reports with two photos ({len(photos[0]) / 2**20:.1f} MB and "
          f"{len(photos[1]) / 2**20:.1f} MB), vs bare GET /bare")
    print(f"concurrency {args.upload_concurrency}, {args.seconds:g}s measured after {args.warmup:g}s warm-up, "
          f"{args.rounds} interleaved round(s), medians; client: threads with http.client")
    print(f"{'target':<14} {'rps':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>6}  {'rps ratio':>9} {'p99 ratio':>9}")
    for name, (rps, p50, p99, errors) in (("bare", bare), ("file report", filing)):
        print(f"{name:<14} {rps:9.2f} {p50:9.1f} {p99:9.1f} {errors:>6}  {rps / bare[0]:9.4f} {p99 / bare[2]:9.1f}")
    print()


def bench_photos(photos: list[bytes], repeat: int = 5) -> None:
    """Part 3: process_photo in this process, milliseconds per MB of upload."""
    from core.media import process_photo

    timings = []
    for _ in range(repeat):
        for photo in photos:
            started = time.perf_counter()
            process_photo(photo, max_bytes=10 * 2**20)
            timings.append((time.perf_counter() - started) * 1000 / (len(photo) / 2**20))
    print(f"process_photo: {statistics.median(timings):.1f} ms per MB (median of {len(timings)}; min "
          f"{min(timings):.1f}, max {max(timings):.1f}); decode, rotate, EXIF strip, 1600 px display + 320 px "
          "thumbnail as JPEG")


CITY_REPORTS = 360_000


def _city_database(url: str, scale: float) -> None:
    """Make ``url`` hold the city's reports: reuse them when present, else load residents and reports."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if target.get_backend_name() == "postgresql":
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
    env = child_env({"SUPERAPP_DATABASE_URL": url, "SUPERAPP_ENV": "test", "SUPERAPP_SECRET_KEY": BENCH_SECRET_KEY})
    engine = create_engine(url)
    present = residents = 0
    if inspect(engine).has_table("feedback_report"):
        with engine.connect() as conn:
            present = conn.execute(text("SELECT COUNT(*) FROM feedback_report")).scalar_one()
            residents = conn.execute(text("SELECT COUNT(*) FROM user_account WHERE kind = 'resident'")).scalar_one()
    engine.dispose()
    wanted = round(CITY_REPORTS * scale)
    if present >= wanted:
        subprocess.run(superapp_command() + ["db", "upgrade"], env=env, check=True, capture_output=True)
        print(f"reusing {present:,} reports in the database", file=sys.stderr)
        return
    parts = "feedback" if present == 0 and residents > 1000 * scale else "people,feedback"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.city", "--url", url, "--scale", str(scale), "--parts", parts],
                          env=env, cwd=ROOT, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"bench.city could not load the city: {done.stderr[-3000:]}")
    print(done.stdout, file=sys.stderr)
    print(f"loaded {parts} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _newest_report(url: str, unit: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT MAX(id) FROM feedback_report WHERE handling_unit_id = :u"), {"u": unit})
        value = int(newest.scalar_one() or 1)
    engine.dispose()
    return value


def _get(running: RunningServer, path: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """One GET, the body read to the end: (milliseconds, status, bytes)."""
    conn = http.client.HTTPConnection(HOST, running.port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    size = 0
    while chunk := response.read(65536):
        size += len(chunk)
    conn.close()
    return (time.perf_counter() - started) * 1000, response.status, size


def bench_city(args: argparse.Namespace) -> None:
    """The queue, dashboard, map layers and Open311 listing over the city's reports, vs /bare."""
    _city_database(args.city, args.scale)
    deep = _newest_report(args.city, "phu-xuan") - 20_000
    product = Server.product(env={"SUPERAPP_DATABASE_URL": args.city}, prepare=lambda env, workdir: None)
    official, operator = bearer_of("phuxuan.demo"), bearer_of("operator.demo")
    api = "/api/miniapps/feedback"
    phu_xuan = "107.55,16.45,107.60,16.50"
    queues = [Target("queue unit", product, f"{api}/queue", headers=official),
              Target("queue filtered", product, f"{api}/queue?state=closed&category_id=trash&overdue=false",
                     headers=official),
              Target("queue overdue", product, f"{api}/queue?overdue=true", headers=operator),
              Target("queue keyset", product, f"{api}/queue?unit_id=phu-xuan&before={deep}", headers=operator)]
    # Browsers and phones ask for gzip; "map plain" is the same layer to a client that does not.
    gzip = {"Accept-Encoding": "gzip"}
    maps = [Target("map layer", product, f"{api}/reports.geojson", headers=gzip),
            Target("map bbox", product, f"{api}/reports.geojson?bbox={phu_xuan}&limit=500", headers=gzip),
            Target("map plain", product, f"{api}/reports.geojson")]
    others = [Target("dashboard", product, f"{api}/dashboard", headers=operator),
              Target("open311 list", product, "/open311/v2/requests.json")]
    if args.maps_only:
        queues, others = [], []
    comparison = compare(baseline=Target("bare", Server.bare(), "/bare"), targets=[*queues, *maps, *others],
                         settings=settings_from(args))
    count = round(CITY_REPORTS * args.scale)
    for title, group, floor in ((f"queue over {count:,} reports", queues, 0.4),
                                (f"public map layers over {count:,} reports", maps, 0.5),
                                (f"dashboard and Open311 over {count:,} reports", others, None)):
        labels = {t.label for t in group}
        if not labels:
            continue
        part = Comparison(settings=comparison.settings, client=comparison.client, baseline=comparison.baseline,
                          targets=[m for m in comparison.targets if m.target.label in labels])
        print()
        report(part, title=f"{title}, PostgreSQL, vs bare FastAPI GET /bare" if "postgresql" in args.city
               else f"{title} vs bare FastAPI GET /bare", rps_floor=floor)
    if not args.maps_only:
        _cold_answers(args, product, official, operator)


def _cold_answers(args: argparse.Namespace, product: Server, official: Any, operator: Any) -> None:
    """Each answer asked with a page size no cached answer has: what it costs right after a report changed."""
    api = "/api/miniapps/feedback"
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cold-")))
        running = stack.enter_context(start_server(product, workdir))
        headers = {"official": official(running), "operator": operator(running), "public": {}}
        paths = [("queue unit", "official", f"{api}/queue?per_page={{n}}"),
                 ("queue filtered", "official", f"{api}/queue?state=closed&category_id=trash&per_page={{n}}"),
                 ("queue overdue", "operator", f"{api}/queue?overdue=true&per_page={{n}}"),
                 ("map layer", "public", f"{api}/reports.geojson?limit={{n}}0"),
                 ("dashboard", "operator", f"{api}/dashboard?since=2024-01-0{{d}}T00:00:00Z"),
                 ("open311 list", "public", "/open311/v2/requests.json?start_date=2026-09-{d:02d}T00:00:00%2B07:00")]
        print()
        print("uncached answers (first request for a query; the cost after any report changed), ms, one at a time")
        print(f"{'target':<16} {'median':>8} {'p99':>8} {'max':>8} {'bytes':>10}")
        for label, who, template in paths:
            timings, size = [], 0
            for n in range(10, 30):
                elapsed, status, size = _get(running, template.format(n=n, d=n % 9 + 1), headers[who])
                if status != 200:
                    raise BenchError(f"{label}: {template} answered {status}")
                timings.append(elapsed)
            ordered = sorted(timings)
            print(f"{label:<16} {statistics.median(ordered):8.1f} {percentile(ordered, 99):8.1f} "
                  f"{ordered[-1]:8.1f} {size:>10,}")
        before = process_memory_kib(running.pid)[0] or 0
        elapsed, status, size = _get(running, f"{api}/reports.csv", headers["operator"])
        after, peak = process_memory_kib(running.pid)
        print(f"\nGET {api}/reports.csv (every report, streamed): {elapsed / 1000:.1f} s, {size / 2**20:.1f} MiB, "
              f"status {status}; server RSS {before / 1024:.0f} MiB before, {(after or 0) / 1024:.0f} MiB after, "
              f"peak {(peak or 0) / 1024:.0f} MiB")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three parts and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_feedback", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--upload-concurrency", type=int, default=4,
                        help="clients posting reports with photos (default %(default)s)")
    parser.add_argument("--skip-queue", action="store_true", help="skip the 100,000-report queue part")
    parser.add_argument("--city", metavar="URL", help="measure at city size on this database (loaded if empty)")
    parser.add_argument("--scale", type=float, default=1.0, help="city size for --city (1.0 = 360,000 reports)")
    parser.add_argument("--maps-only", action="store_true",
                        help="with --city: only the map layers (no queue, dashboard, Open311 or uncached answers)")
    args = parser.parse_args(argv)
    if args.city:
        try:
            bench_city(args)
        except BenchError as exc:
            print(f"bench_feedback: could not measure: {exc}", file=sys.stderr)
            return 2
        return 0
    photos = [three_mb_jpeg() for _ in range(2)]
    try:
        if not args.skip_queue:
            product = Server.product(prepare=_with_queue)
            filters = "state=submitted&category_id=public-order&overdue=false"
            comparison = compare(
                baseline=Target("bare", Server.bare(), "/bare"),
                targets=[Target("queue unit", product, f"/api/miniapps/feedback/queue?{filters}",
                                headers=bearer_of("phuxuan.demo")),
                         Target("queue operator", product,
                                "/api/miniapps/feedback/queue?unit_id=phu-xuan&state=in_progress&page=40",
                                headers=bearer_of("operator.demo"))],
                settings=settings_from(args),
            )
            print()
            report(comparison, title=f"GET /api/miniapps/feedback/queue over {QUEUE_REPORTS:,} reports of one unit, "
                                     "filtered, vs bare FastAPI GET /bare")
            print()
        bench_filing(args, photos)
    except BenchError as exc:
        print(f"bench_feedback: could not measure: {exc}", file=sys.stderr)
        return 2
    bench_photos(photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
