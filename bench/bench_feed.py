"""GET /api/feed with 1,000,000 feed items in SQLite, against a bare FastAPI endpoint, as ratios.

Target from the issue: "Feed page (20 items, 1,000,000 feed items in the database): at least 30% of
the bare endpoint's requests per second, with p99." Three product requests are driven, alternating
with the baseline: the anonymous first page (stream, pinned items and the mini-apps' cards), a page
deep in the stream (a cursor half-way down the table), and a resident's first page (home unit and a
followed unit: three index branches instead of one). The rps ratio is marked PASS/BELOW against 0.30;
the p99 ratio is printed beside it. A report, not a test: exits 0 whatever the ratios are.

The product keeps each page it reads for up to 2 s per worker (``PageCache``), which is what it
serves and what the verdict is on. Two more rows ("no cache", a second server whose cache is off,
on a copy of the same database) show what a page costs when every request reads the database;
``--cached-only`` leaves them out.

Before the server starts, the database is migrated and seeded (``superapp db upgrade``, ``superapp
seed demo``) and then 1,000,000 items are bulk-loaded with one ``executemany`` in one transaction
(about half a minute). ``--items N`` loads another count; ``--keep-db PATH`` keeps the loaded file
and reuses it on the next run (loading is skipped when PATH exists), for quicker repeated runs.

    python -m bench.bench_feed [--items N] [--keep-db PATH] [--cached-only] [--seconds S] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import (
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
from core.feed.service import CardCache, PageCache, encode_cursor

RPS_FLOOR = 0.30
ITEMS = 1_000_000
RESIDENT_PHONE = "+84905999001"
RESIDENT_HOME, RESIDENT_FOLLOWS = "phu-xuan", "kim-long"
# Texts of realistic length: a page of 20 items is ~10 KB of JSON, as a phone would get it.
TITLES = (
    ("Thông báo lịch cắt điện khu vực {n}", "Scheduled power cut in area {n}"),
    ("Cảnh báo mưa lớn và nguy cơ ngập úng, bản tin số {n}", "Heavy rain and flooding risk, bulletin {n}"),
    ("Lịch tiêm chủng mở rộng đợt {n}", "Vaccination schedule, round {n}"),
    ("Điều chỉnh phân luồng giao thông, thông báo {n}", "Traffic diversion, notice {n}"),
)
BODIES = (
    ("Người dân lưu ý theo dõi thông tin chính thức, chủ động sắp xếp công việc và liên hệ đường dây nóng "
     "của phường khi cần hỗ trợ. Mã thông báo {n}.",
     "Residents should follow official updates, plan ahead and call the ward's hotline if they need help. "
     "Notice {n}."),
    ("Đề nghị các hộ gia đình kê cao tài sản, không đi qua các ngầm tràn và khu vực sạt lở. Bản tin {n}.",
     "Households should move belongings up, avoid flooded crossings and landslide areas. Bulletin {n}."),
)


def _units(db: sqlite3.Connection) -> tuple[list[str], list[str]]:
    rows = db.execute("SELECT id, kind FROM org_unit").fetchall()
    return [i for i, k in rows if k in ("ward", "commune")], [i for i, k in rows if k == "department"]


def _rows(count: int, wards: list[str], departments: list[str], start: datetime,
          now: datetime) -> Iterator[tuple[object, ...]]:
    """Feed items in id order, one every ~20 s of the past year, with a realistic mix of everything."""
    rng = random.Random(20260606)
    step = (now - start) / count
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite (UTC, no offset)
    for n in range(1, count + 1):
        published = start + step * n
        roll = rng.random()
        kind, severity = ("warning", rng.choice(("info", "warning", "critical"))) if roll < 0.1 else ("news", "info")
        audience = "everyone" if roll < 0.8 else "residents" if roll < 0.92 else "officials"
        city_wide = rng.random() < 0.7
        author = "hue" if city_wide and rng.random() < 0.5 else rng.choice(departments if city_wide else wards)
        expiry = rng.random()
        expires = (published + timedelta(days=2) if expiry < 0.1 else now + timedelta(days=30) if expiry < 0.12
                   else None)
        title, body = TITLES[n % len(TITLES)], BODIES[n % len(BODIES)]
        yield (
            n, published.strftime(fmt), kind, severity, audience, author, None,
            "festival" if n % 50 == 0 else None,
            title[0].format(n=n), title[1].format(n=n), body[0].format(n=n), body[1].format(n=n),
            f"/feed#item-{n}" if n % 3 == 0 else None,
            city_wide, False, expires.strftime(fmt) if expires else None,
            published.strftime(fmt) if rng.random() < 0.005 else None,
        )


def load_feed_items(path: Path, count: int = ITEMS) -> float:
    """Bulk-load ``count`` feed items (and their unit targets, and a few pins) into a migrated SQLite file.

    One transaction and ``executemany``: the ORM would take an hour for a million rows. Returns seconds.
    """
    started = time.monotonic()
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous=OFF")
        wards, departments = _units(db)
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = list(_rows(count, wards, departments, now - timedelta(days=365), now))
        rng = random.Random(7)
        targets = []
        for row in rows:
            if not row[13]:  # targeted: one unit, sometimes two
                targets.append((row[0], rng.choice(wards)))
                if rng.random() < 0.2:
                    extra = rng.choice(wards)
                    if extra != targets[-1][1]:
                        targets.append((row[0], extra))
        with db:
            db.executemany(
                "INSERT INTO feed_item (id, published_at, kind, severity, audience, author_unit_id, author_user_id,"
                " miniapp, title_vi, title_en, body_vi, body_en, url, city_wide, pinned, expires_at, withdrawn_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO feed_item_unit (feed_item_id, unit_id) VALUES (?, ?)", targets)
            # A handful of pins, as a city keeps them: a few live, one expired, spread over the year.
            for item_id in (count // 3, count // 2, count - 5000, count - 10):
                db.execute("UPDATE feed_item SET pinned = 1, city_wide = 1, audience = 'everyone', "
                           "withdrawn_at = NULL WHERE id = ?", (item_id,))
            db.execute("UPDATE feed_item SET expires_at = published_at WHERE id = ?", (count // 3,))
        db.execute("ANALYZE")  # what `superapp db upgrade` leaves a real database with, after a while
    finally:
        db.close()
    return time.monotonic() - started


def _prepare(items: int, keep: Path | None, loaded: dict[str, Path]):
    """Migrate, seed and load the first server's database; later servers get a copy of it."""
    def prepare(env: dict[str, str], workdir: Path) -> None:
        target = workdir / "bench.db"
        source = keep if keep is not None and keep.exists() else loaded.get("db")
        if source is not None:
            shutil.copy(source, target)
            return
        migrate_and_seed(env, workdir)
        seconds = load_feed_items(target, items)
        print(f"loaded {items:,} feed items in {seconds:.1f} s", file=sys.stderr)
        # A pristine copy before the server opens it, for the other servers (and --keep-db).
        loaded["db"] = keep if keep is not None else workdir.parent / f"{workdir.name}-loaded.db"
        shutil.copy(target, loaded["db"])
    return prepare


def load_city(product: Server, url: str, scale: float) -> None:
    """Migrate and seed the city database, then load ``bench.city.feed`` into it at ``scale``."""
    from bench.city import feed
    from bench.city.base import City

    with tempfile.TemporaryDirectory(prefix="bench-feed-city-") as workdir:
        migrate_and_seed(child_env(product.env), Path(workdir))
    started = time.monotonic()
    written = feed.load(City(url, scale))
    print(f"loaded the city's feed in {time.monotonic() - started:.0f} s: {written}", file=sys.stderr)


def _newest_item(url: str) -> int:
    """The highest feed item id of a city database (a deep cursor starts half-way down)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT COALESCE(MAX(id), 1) FROM feed_item")).scalar_one())
    finally:
        engine.dispose()


def uncached_app() -> object:
    """The product with the feed's caches off: every request reads its page (and asks the mini-apps) anew."""
    from core.app import create_app_from_env

    app = create_app_from_env()
    app.state.feed_cache = PageCache(ttl=0)
    app.state.feed_cards = CardCache(ttl=0)
    return app


def resident_bearer(running: RunningServer) -> dict[str, str]:
    """A resident of Phú Xuân following Kim Long, created in the server's database, and their token."""
    script = (
        "import sys\n"
        "from sqlmodel import Session\n"
        "from config import load_settings\n"
        "from core.db import make_engine\n"
        "from core.identity import service\n"
        "from push.models import UnitFollow\n"
        "settings = load_settings()\n"
        "engine = make_engine(settings.sqlalchemy_url)\n"
        "with Session(engine, expire_on_commit=False) as db:\n"
        f"    user = service.find_or_create_resident(db, firebase_uid=None, phone={RESIDENT_PHONE!r}, address=None)\n"
        f"    user.home_unit_id = {RESIDENT_HOME!r}\n"
        "    db.add(user)\n"
        f"    if db.get(UnitFollow, (user.id, {RESIDENT_FOLLOWS!r})) is None:\n"
        f"        db.add(UnitFollow(user_id=user.id, unit_id={RESIDENT_FOLLOWS!r}))\n"
        "    db.commit()\n"
        "    pair = service.start_session(db, secret=settings.secret_key, user=user, method='bench',\n"
        "                                 client='bench', address='127.0.0.1')\n"
        "print(pair.access_token)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=running.env, cwd=running.workdir,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"could not make the resident: {done.stderr.strip()}")
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


def main(argv: Sequence[str] | None = None) -> int:
    """Load the items, run the comparison and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_feed", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--items", type=int, default=ITEMS, help="feed items to load (default %(default)s)")
    parser.add_argument("--keep-db", type=Path, default=None,
                        help="keep the loaded database here and reuse it when it exists")
    parser.add_argument("--cached-only", action="store_true",
                        help="leave out the rows measured with the page cache off")
    parser.add_argument("--url", default=None,
                        help="serve this city database (PostgreSQL or SQLite URL, loaded by `python -m bench.city` or "
                             "--load-city) instead of a fresh SQLite file")
    parser.add_argument("--load-city", type=float, default=None, metavar="SCALE",
                        help="with --url: migrate, seed and load bench.city.feed at this scale first")
    args = parser.parse_args(argv)
    if args.load_city is not None and not args.url:
        parser.error("--load-city needs --url")
    loaded: dict[str, Path] = {}
    if args.url:
        # The city database is served as it is: loaded beforehand, or here once with --load-city.
        product = Server.product(env={"SUPERAPP_DATABASE_URL": args.url}, prepare=lambda env, workdir: None)
        uncached = Server(name="uncached", app="bench.bench_feed:uncached_app", factory=True,
                          env=dict(product.env), prepare=lambda env, workdir: None)
        if args.load_city is not None:
            load_city(product, args.url, args.load_city)
    else:
        prepare = _prepare(args.items, args.keep_db, loaded)
        product = Server.product(prepare=prepare)
        uncached = Server(name="uncached", app="bench.bench_feed:uncached_app", factory=True,
                          env=dict(product.env), prepare=prepare)
    newest = _newest_item(args.url) if args.url else args.items
    deep = f"/api/feed?cursor={encode_cursor(newest // 2)}"
    targets = [
        Target("feed first", product, "/api/feed"),
        Target("feed deep", product, deep),
        Target("resident", product, "/api/feed", headers=resident_bearer),
    ]
    if not args.cached_only:
        targets += [Target("first, no cache", uncached, "/api/feed"), Target("deep, no cache", uncached, deep),
                    Target("resident, no cache", uncached, "/api/feed", headers=resident_bearer)]
    try:
        comparison = compare(baseline=Target("bare", Server.bare(), "/bare"), targets=targets,
                             settings=settings_from(args))
    except BenchError as exc:
        print(f"bench_feed: could not measure: {exc}", file=sys.stderr)
        return 2
    finally:
        if loaded.get("db") is not None and loaded["db"] != args.keep_db:
            loaded["db"].unlink(missing_ok=True)
    print()
    where = f"the city database {args.url.rsplit('/', 1)[-1]}" if args.url else "SQLite"
    report(comparison, title=f"GET /api/feed (20 items, {newest:,} feed items in {where}) vs bare FastAPI GET /bare",
           rps_floor=RPS_FLOOR)
    print(f"target: rps ratio >= {RPS_FLOOR:.2f} (issue), p99 reported beside it. 'feed first': anonymous first page "
          "with pinned items and the mini-apps' cards; 'feed deep': a cursor half-way down the table; 'resident': "
          "a resident's first page (home unit + one followed unit, three index branches). These are served as the "
          "product serves them, with its page cache (a page is re-read from the database at most every 2 s per "
          "worker). The 'no cache' rows are the same requests with the cache off: every request reads the database.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
