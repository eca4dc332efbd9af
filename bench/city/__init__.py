"""A synthetic Hue at real size, for benchmarks and capacity planning (see bench/README.md, "The city").

``generate`` refuses what cannot be right (production, impossible sizes, a city already loaded, unknown
parts), migrates and seeds the demo, then loads each part in order and times it. ``python -m bench.city``
is its command line.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text

from bench.city.base import City, CityError
from config import Settings, load_settings
from core.cli import as_a_demo

# The order matters: every part after ``people`` reads the residents, and ``notifications`` may
# point at feed items.
PARTS = ("people", "feed", "notifications", "interaction", "feedback", "tasks", "floodmap")
MAX_SCALE = 3.0  # 3.9 million residents: beyond that the synthetic numbering plans run out


@dataclass
class PartResult:
    """What one part did: rows written per table and seconds taken, or why it was skipped."""

    name: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None


def parse_scale(value: str | float) -> float:
    """The scale as a number in (0, MAX_SCALE], or CityError saying what is wrong with it."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise CityError(f"--scale: {value!r} is not a number (1.0 is Hue's real size)") from None
    if not math.isfinite(scale) or scale <= 0 or scale > MAX_SCALE:
        raise CityError(f"--scale: {value} is outside (0, {MAX_SCALE:g}] (1.0 is Hue's real size)")
    return scale


def parse_parts(value: str | Sequence[str]) -> list[str]:
    """The parts asked for, in loading order, or CityError naming an unknown one."""
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    names = [name for name in names if name]
    unknown = [name for name in names if name not in PARTS]
    if unknown or not names:
        raise CityError(f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(PARTS)}")
    return [part for part in PARTS if part in names]


def generate(url: str, *, scale: str | float = 1.0, parts: str | Sequence[str] = PARTS, seed: int = 2025,
             echo: Callable[[str], None] = print) -> tuple[City, list[PartResult]]:
    """Migrate, seed the demo and load ``parts`` of a city of ``scale`` into the database at ``url``."""
    if os.environ.get("SUPERAPP_ENV", "").strip().lower() == "production":
        raise CityError("refusing to generate a synthetic city with SUPERAPP_ENV=production")
    as_a_demo()  # development unless the environment or .env names one, as `superapp seed demo`
    scale = parse_scale(scale)
    wanted = parse_parts(parts)
    settings = load_settings(database_url=url)
    if settings.env == "production":  # set in a .env file rather than the environment
        raise CityError("refusing to generate a synthetic city in production (SUPERAPP_ENV)")
    city = City(url, scale=scale, seed=seed)
    _migrate_and_seed(city, settings, wanted, echo)
    results = []
    for part in wanted:
        if importlib.util.find_spec(f"bench.city.{part}") is None:
            results.append(PartResult(part, skipped="module not written yet"))
            echo(f"{part}: skipped (bench/city/{part}.py does not exist)")
            continue
        module = importlib.import_module(f"bench.city.{part}")
        echo(f"{part}: loading ...")
        started = time.perf_counter()
        rows = module.load(city)
        results.append(PartResult(part, rows, time.perf_counter() - started))
        echo(f"{part}: {sum(rows.values()):,} rows in {results[-1].seconds:.1f} s")
    started = time.perf_counter()
    settle(city, sorted({table for result in results for table in result.rows}))
    echo(f"vacuum and analyze: {time.perf_counter() - started:.1f} s")
    return city, results


def settle(city: City, tables: Sequence[str]) -> None:
    """Leave the database as a live one would be: planner statistics everywhere and, on PostgreSQL,
    the written tables vacuumed (a COPY leaves their visibility map empty, so index-only scans would
    still visit the heap until autovacuum came by)."""
    if city.postgres:
        with city.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.execute(text(f'VACUUM "{table}"'))
            connection.execute(text("ANALYZE"))
        return
    with city.engine.begin() as connection:
        connection.execute(text("ANALYZE"))


def has_generated_residents(city: City) -> bool:
    """True when ``people`` already loaded residents into this database."""
    from bench.city.people import FIREBASE_UID_PREFIX

    with city.engine.connect() as connection:
        return connection.execute(text(
            "SELECT 1 FROM user_account WHERE kind = 'resident' AND firebase_uid LIKE :prefix LIMIT 1"),
            {"prefix": f"{FIREBASE_UID_PREFIX}%"}).first() is not None


def _migrate_and_seed(city: City, settings: Settings, parts: list[str], echo: Callable[[str], None]) -> None:
    """What ``superapp db upgrade`` and ``superapp seed demo`` do, through the same functions."""
    from core.app import discover
    from core.migrate import upgrade
    from core.seed import seed_demo

    miniapps = discover(settings)
    upgrade(city.engine, miniapps)
    loaded = has_generated_residents(city)
    if "people" in parts and loaded:
        raise CityError(
            "refusing: this database already holds generated residents; start from an empty database "
            "(PostgreSQL: dropdb and createdb it again; SQLite: a new file), or load other parts without "
            "'people' (--parts feed,...)")
    if "people" not in parts and not loaded:
        raise CityError("the other parts need the residents: include 'people' in --parts")
    for line in seed_demo(city.engine, miniapps, env=settings.env):
        echo(f"demo: {line}")


def table_sizes(city: City, tables: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """Each table's rows now and, on PostgreSQL, its bytes with indexes and TOAST (None on SQLite)."""
    sizes: dict[str, tuple[int, int | None]] = {}
    with city.engine.connect() as connection:
        for table in tables:
            rows = connection.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
            size = connection.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar_one() \
                if city.postgres else None
            sizes[table] = (int(rows), size)
    return sizes


def report(city: City, results: Sequence[PartResult]) -> list[str]:
    """The table printed at the end: per part and table, rows written, seconds, size and bytes per row."""
    sizes = table_sizes(city, sorted({table for result in results for table in result.rows}))
    lines = [(f"{'part':<14}{'table':<26}{'rows written':>14}{'seconds':>9}{'table rows':>13}"
             f"{'size (MiB)':>12}{'bytes/row':>11}")]
    for result in results:
        if result.skipped:
            lines.append(f"{result.name:<14}{'(skipped: ' + result.skipped + ')'}")
            continue
        for n, (table, written) in enumerate(result.rows.items()):
            rows, size = sizes[table]
            seconds = f"{result.seconds:.1f}" if n == 0 else ""
            mib = f"{size / 2**20:.1f}" if size is not None else "-"
            per_row = f"{size / rows:.0f}" if size is not None and rows else "-"
            lines.append(f"{result.name if n == 0 else '':<14}{table:<26}{written:>14,}{seconds:>9}{rows:>13,}"
                         f"{mib:>12}{per_row:>11}")
    total = sum(result.seconds for result in results)
    lines.append(f"{'total':<14}{'':<26}{sum(sum(r.rows.values()) for r in results):>14,}{total:>9.1f}")
    return lines
