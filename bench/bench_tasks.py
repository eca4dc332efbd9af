"""Task monitoring: importing 1,000,000 procedure records, and the ranking page over 40 units and 12 months.

Issue: "An import of 1,000,000 procedure records: rows per second and peak memory; the ranking page over
40 units and 12 periods: requests per second and p99 against the bare endpoint in the same run."

Part 1, the import. A CSV of ``--rows`` records (deterministic, all 40 units, a few bad rows) is written
once; then, each in a fresh process, alternating for ``--import-rounds`` rounds:

- ``parse only`` (the baseline): read the CSV and check every row exactly as the import does, store nothing;
- ``import``: ``procedures.import_rows`` into a migrated SQLite file, batches of 5,000 rows in one
  transaction (keep the good rows), as ``POST /api/miniapps/tasks/procedures/imports`` does.

It prints rows per second of each, the import's ratio to the baseline, and each process's peak resident
memory (``ru_maxrss``), which stays flat however many rows the file has because rows are streamed.

Part 2, the ranking page. The product (only the tasks mini-app loaded) is migrated, seeded with the demo
and loaded with 12 months of tasks (``--tasks-per-month`` tasks a month for all 40 units, most of them
reported and accepted, some late, some overdue; no month closed, so all 12 are evaluated rather than read
from stored snapshots). As served, the rankings, the API's JSON body and the page's content are kept for
up to 10 s per worker (an aged entry is served while one request recomputes it) and dropped on any write
(``miniapps/tasks/cache.py``); the figures are mostly those of a cache hit. Driven with an operator's token,
alternating with the bare endpoint:

- ``ranking page``: ``GET /m/tasks/rankings`` (this month's ranking, its chart, and 12 months of ranks);
- ``ranking api``: ``GET /api/miniapps/tasks/rankings`` (this month's ranking as JSON).

A report, not a test: it exits 0 whatever the figures are.

    python -m bench.bench_tasks [--rows N] [--import-rounds R] [--tasks-per-month T] [--skip-import] [--skip-ranking]
                                [--seconds S] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from bench.harness import (
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
)

ROWS = 1_000_000
BAD_EVERY = 10_000  # one bad row in ten thousand, so the error report is exercised too

# Run in a fresh interpreter: parse or import the CSV, print {"rows", "seconds", "peak_rss_mib", ...}.
IMPORT_CHILD = r"""
import csv, json, resource, sys, time
from datetime import date
from pathlib import Path
mode, csv_path, url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from config import Settings
from core.app import discover
from core.db import make_engine
from core.migrate import upgrade
from core.units.service import load_reference_units
from sqlalchemy import text
from sqlmodel import Session
from bench.city.base import City
from miniapps.tasks import procedures
settings = Settings(env="test", secret_key="bench-only-secret-key-32-chars!!", scheduler_enabled=False,
                    log_json=False, database_url=url, miniapps=["tasks"])
engine = make_engine(settings.sqlalchemy_url)
upgrade(engine, discover(settings))
with Session(engine) as db:
    load_reference_units(db)
    units = procedures.unit_lookup(db)
    # a scratch database: every run starts without procedure records
    for table in ("tasks_procedure_day", "tasks_procedure_record", "tasks_procedure_import"):
        db.execute(text(f"DELETE FROM {table}"))
    db.commit()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(csv_path, "rb") as stream:
    started = time.perf_counter()
    if mode == "parse":
        good = bad = 0
        for number, raw in procedures.csv_rows(stream):
            try:
                procedures.parse_row(raw, units)
                good += 1
            except procedures.RowError:
                bad += 1
        total = good + bad
    elif mode == "raw":
        # the same good rows written the fastest plain way (COPY on PostgreSQL, executemany on SQLite), no checks
        with engine.begin() as connection:  # the rows belong to an import, as the product's do (same FK check)
            connection.execute(text("INSERT INTO tasks_procedure_import (source, filename, mode, status, rows_total, "
                                    "rows_good, rows_bad, errors, created_at) VALUES ('csv', 'raw', 'keep_good', "
                                    "'imported', 0, 0, 0, '[]', CURRENT_TIMESTAMP)"))
            import_id = connection.execute(text("SELECT MAX(id) FROM tasks_procedure_import")).scalar()
        reader = csv.reader(line.decode() for line in stream)
        next(reader)
        rows = ((import_id, u, p, date.fromisoformat(r), o == "online", date.fromisoformat(d),
                 date.fromisoformat(v) if v else None) for u, p, r, o, d, v in reader if u in units)
        good = City(url).copy("tasks_procedure_record", ("import_id", *procedures.COLUMNS), rows)
        total, bad = good, 0
    else:
        with Session(engine) as db:
            record = procedures.import_rows(db, procedures.csv_rows(stream), source="csv", mode="keep_good")
        total, good, bad = record.rows_total, record.rows_good, record.rows_bad
    seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": total, "good": good, "bad": bad, "seconds": seconds,
                  "rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024}))
"""


def write_csv(path: Path, rows: int) -> None:
    """A deterministic CSV of ``rows`` procedure records over a year, with one bad row in ``BAD_EVERY``."""
    from core.units.service import reference_units
    from miniapps.tasks.procedures import PROCEDURES

    units = [u.id for u in reference_units() if u.kind.value in ("ward", "commune")]
    rng = random.Random(1_000_000)
    start = date(2025, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("unit_id,procedure,received_on,online,due_on,resolved_on\n")
        for n in range(rows):
            procedure, days = PROCEDURES[n % len(PROCEDURES)]
            received = start + timedelta(days=n % 365)
            due = received + timedelta(days=days)
            roll = rng.random()
            resolved = "" if roll < 0.03 else (due + timedelta(days=int(roll * 10) - 7)).isoformat()
            if resolved and resolved < received.isoformat():
                resolved = received.isoformat()
            unit = units[n % 40] if n % BAD_EVERY else "nowhere"
            out.write(f"{unit},{procedure},{received.isoformat()},{'online' if roll < 0.76 else 'in_person'},"
                      f"{due.isoformat()},{resolved}\n")


def run_import(mode: str, csv_path: Path, workdir: Path, url: str | None) -> dict[str, float]:
    """One parse, raw insert or import in a fresh process (into ``url``, else a new SQLite file); its JSON result."""
    db = workdir / f"import-{mode}-{random.randrange(1 << 30)}.db"
    done = subprocess.run([sys.executable, "-c", IMPORT_CHILD, mode, str(csv_path), url or f"sqlite:///{db}"],
                          cwd=ROOT, env=child_env({}), capture_output=True, text=True, timeout=3600, check=False)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"{mode} failed (exit {done.returncode}):\n{done.stdout}{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def import_part(rows: int, rounds: int, url: str | None = None) -> None:
    """Part 1: rows per second and peak memory of the import against parsing alone and a raw insert."""
    where = "PostgreSQL" if url and url.startswith("postgresql") else "SQLite"
    with tempfile.TemporaryDirectory(prefix="bench-tasks-import-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "records.csv"
        write_csv(csv_path, rows)
        size = csv_path.stat().st_size / 2**20
        print(f"wrote {rows:,} records ({size:.0f} MiB CSV)", file=sys.stderr)
        modes = ("parse", "raw", "import")
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        for n in range(rounds):
            for mode in modes if n % 2 == 0 else modes[::-1]:
                print(f"round {n + 1}/{rounds}: {mode} ...", file=sys.stderr, flush=True)
                results[mode].append(run_import(mode, csv_path, workdir, url))
    print()
    print(f"Import of {rows:,} procedure records from a {size:.0f} MiB CSV into {where} (median of {rounds} round(s), "
          "each in a fresh process)")
    print()
    print(f"{'run':<12} {'rows':>10} {'bad':>6} {'seconds':>8} {'rows/s':>10} {'vs parse':>8} {'vs raw':>7} "
          f"{'peak RSS MiB':>13} {'RSS before MiB':>15}")
    rate_of = {mode: statistics.median(r["rows"] / r["seconds"] for r in runs) for mode, runs in results.items()}
    for mode, label in (("parse", "parse only"), ("raw", "raw insert"), ("import", "import")):
        runs = results[mode]
        rate = rate_of[mode]
        print(f"{label:<12} {int(runs[0]['rows']):>10,} {int(runs[0]['bad']):>6} "
              f"{statistics.median(r['seconds'] for r in runs):>8.1f} {rate:>10,.0f} {rate / rate_of['parse']:>8.2f} "
              f"{rate / rate_of['raw']:>7.2f} {statistics.median(r['peak_rss_mib'] for r in runs):>13.0f} "
              f"{statistics.median(r['rss_before_mib'] for r in runs):>15.0f}")
    print()
    print("vs parse: rows per second against reading and checking the same file without storing it; vs raw: against "
          "writing the same good rows the fastest plain way (COPY on PostgreSQL, executemany on SQLite) with no "
          "checks, no report and no daily figures. Peak RSS is the whole process; compare it with the RSS before "
          "reading the file: rows are streamed and inserted in batches of 5,000, so it does not grow with the file.")


# --- Part 2: the ranking page -------------------------------------------------------------------------------

LOAD_MONTHS = r"""
import sys
from datetime import UTC, datetime, timedelta
from sqlmodel import Session
from config import load_settings
from core.db import make_engine
from core.identity.principal import Membership, Principal
from miniapps.tasks import service
per_month = int(sys.argv[1])
engine = make_engine(load_settings().sqlalchemy_url)
allow = lambda permission, unit: True
now = datetime.now(UTC)
noivu = Principal(user_id=None, kind="official", memberships=(Membership("department_official", "so-noi-vu"),))
with Session(engine, expire_on_commit=False) as db:
    units = [u.id for u in service.assignee_units(db)]
    for month in range(12):
        for t in range(per_month):
            deadline = now - timedelta(days=30 * month + 3 * t + 1)
            created = deadline - timedelta(days=20)
            task = service.create_task(db, principal=noivu, allows=allow, title=f"Nhiệm vụ {month}-{t}",
                                       description="Bench", deadline=deadline, unit_ids=None, all_units=True,
                                       assigner_unit_id="so-noi-vu", now=created,
                                       indicators=[service.IndicatorSpec("Chỉ tiêu", "%", 0, 100)])
            [indicator] = service.indicators_of(db, task.id)
            views = service.visible_assignments(db, service.Reach(everything=True), task_id=task.id, now=created)
            for n, view in enumerate(views):
                if n % 10 == 9:
                    continue  # overdue
                unit = Principal(user_id=None, kind="official",
                                 memberships=(Membership("commune_official", view.assignment.unit_id),))
                at = created + timedelta(days=5) if n % 4 else deadline + timedelta(days=2)
                report = service.submit_report(db, principal=unit, allows=allow, assignment_id=view.assignment.id,
                    spec=service.ReportSpec(percent=100, complete=True,
                                            values=[service.IndicatorValue(indicator.id, float(n * 7 % 100))]), now=at)
                service.review_report(db, principal=noivu, allows=allow, report_id=report.id, accept=True, now=at)
print("loaded")
"""

OPERATOR_TOKEN = r"""
from sqlmodel import Session, select
from config import load_settings
from core.db import make_engine
from core.identity import service
from core.identity.models import User
settings = load_settings()
engine = make_engine(settings.sqlalchemy_url)
with Session(engine, expire_on_commit=False) as db:
    user = db.exec(select(User).where(User.username == "operator.demo")).one()
    pair = service.start_session(db, secret=settings.secret_key, user=user, method="bench", client="bench",
                                 address="127.0.0.1")
print(pair.access_token)
"""


def _prepare(per_month: int):
    def prepare(env: dict[str, str], workdir: Path) -> None:
        migrate_and_seed(env, workdir)
        done = subprocess.run([sys.executable, "-c", LOAD_MONTHS, str(per_month)], env=env, cwd=workdir,
                              capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise BenchError(f"could not load 12 months of tasks: {done.stderr[-3000:]}")
    return prepare


def operator_bearer(running: RunningServer) -> dict[str, str]:
    """A session of the demo operator in the server's database."""
    done = subprocess.run([sys.executable, "-c", OPERATOR_TOKEN], env=running.env, cwd=running.workdir,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(f"could not sign the operator in: {done.stderr.strip()[-2000:]}")
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


def _city_prepare(url: str, scale: float | None):
    """Serve an existing city database; with ``scale``, migrate, seed and load the tasks module into it first."""
    def prepare(env: dict[str, str], workdir: Path) -> None:
        if scale is None:
            return
        migrate_and_seed(env, workdir)
        from bench.city import tasks
        from bench.city.base import City

        started = time.monotonic()
        written = tasks.load(City(url, scale))
        print(f"loaded the city's tasks in {time.monotonic() - started:.0f} s: {written}", file=sys.stderr)
    return prepare


def ranking_part(args: argparse.Namespace) -> int:
    """Part 2: the ranking page and API (and, on a city database, the task list and statistics) against bare."""
    if args.url:
        product = Server.product(env={"SUPERAPP_MINIAPPS": "tasks", "SUPERAPP_DATABASE_URL": args.url},
                                 prepare=_city_prepare(args.url, args.load_city))
    else:
        product = Server.product(env={"SUPERAPP_MINIAPPS": "tasks"}, prepare=_prepare(args.tasks_per_month))
    targets = [Target("ranking page", product, "/m/tasks/rankings", headers=operator_bearer),
               Target("ranking api", product, "/api/miniapps/tasks/rankings", headers=operator_bearer)]
    if args.url:
        targets += [Target("task list api", product, "/api/miniapps/tasks/tasks", headers=operator_bearer),
                    Target("overview page", product, "/m/tasks/", headers=operator_bearer),
                    Target("procedure stats", product, "/api/miniapps/tasks/procedures/stats",
                           headers=operator_bearer)]
    try:
        comparison = compare(baseline=Target("bare", Server.bare(), "/bare"), targets=targets,
                             settings=settings_from(args))
    except BenchError as exc:
        print(f"bench_tasks: could not measure: {exc}", file=sys.stderr)
        return 2
    print()
    if args.url:
        title = f"Tasks on the city database {args.url.rsplit('/', 1)[-1]} (24 months of tasks and procedure records) vs bare"
    else:
        assignments = 12 * args.tasks_per_month * 40
        title = (f"Ranking of 40 units over 12 months ({12 * args.tasks_per_month} tasks, {assignments:,} assignments, "
                 "every month open) vs bare FastAPI GET /bare")
    report(comparison, title=title)
    print("The issue sets no floor: rps and p99 are reported against the bare endpoint. Open months are evaluated "
          "(kept up to 10 s per worker, refreshed by one request while the others get the previous result, dropped "
          "on writes); a closed month's ranking is read from its stored snapshot. The task list is one grouped query "
          "per page of 50, the statistics add up daily figures (at most 40 units x the days asked for).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tasks", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--rows", type=int, default=ROWS, help="procedure records to import (default %(default)s)")
    parser.add_argument("--import-rounds", type=int, default=1, help="import rounds (default %(default)s)")
    parser.add_argument("--import-url", default=None,
                        help="a scratch database to import into (emptied of procedure records on every run); "
                             "default: a fresh SQLite file per run")
    parser.add_argument("--tasks-per-month", type=int, default=5,
                        help="tasks for all 40 units per month, 12 months (default %(default)s)")
    parser.add_argument("--url", default=None,
                        help="serve this city database (loaded by `python -m bench.city` or --load-city) instead "
                             "of a fresh SQLite file")
    parser.add_argument("--load-city", type=float, default=None, metavar="SCALE",
                        help="with --url: migrate, seed and load bench.city.tasks at this scale first")
    parser.add_argument("--skip-import", action="store_true", help="leave out part 1")
    parser.add_argument("--skip-ranking", action="store_true", help="leave out part 2")
    args = parser.parse_args(argv)
    if args.load_city is not None and not args.url:
        parser.error("--load-city needs --url")
    if not args.skip_import:
        try:
            import_part(args.rows, args.import_rounds, args.import_url)
        except BenchError as exc:
            print(f"bench_tasks: could not measure the import: {exc}", file=sys.stderr)
            return 2
    if not args.skip_ranking:
        return ranking_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
