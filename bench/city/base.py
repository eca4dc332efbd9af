"""What every part of the synthetic city shares: the target database, the scale, a seeded random source
and a fast bulk loader (COPY on PostgreSQL, batched executemany on SQLite).

Each domain module (``people``, ``feed``, ``notifications``, ``interaction``, ``feedback``, ``tasks``,
``floodmap``) exposes ``load(city: City) -> dict[str, int]`` returning the rows it wrote per table.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from core.db import make_engine

# Every synthetic person, report and question is marked so nobody mistakes the city for real data.
SYNTHETIC = "[synthetic]"
BATCH = 10_000


class CityError(ValueError):
    """The city cannot be generated as asked (impossible sizes, production database, ...)."""


@dataclass
class City:
    """The database being filled and how big the city is (1.0 = Hue's real size)."""

    url: str
    scale: float = 1.0
    seed: int = 2025
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 30, tzinfo=UTC))
    engine: Engine = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        # The product's engine factory: on SQLite it turns on WAL, so a part can stream rows it reads
        # while another connection writes.
        self.engine = make_engine(self.url)
        self.rng = random.Random(self.seed)

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (COPY), False on SQLite (executemany)."""
        return self.engine.dialect.name == "postgresql"

    def size(self, full: int, minimum: int = 1) -> int:
        """``full`` (Hue's real figure) times the scale, at least ``minimum``."""
        return max(minimum, round(full * self.scale))

    def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load ``rows`` (tuples in ``columns`` order) into ``table``; returns how many were written.

        JSON columns take already-serialised strings (``json.dumps``); datetimes are passed as they are.
        Rows are consumed lazily, so a generator of millions of rows needs no memory for them.
        """
        count = 0
        if self.postgres:
            raw = self.engine.raw_connection()
            try:
                with raw.cursor() as cursor:  # type: ignore[attr-defined]
                    if _may_skip_key_checks(cursor, table):
                        # Foreign keys are checked by a trigger per row (an index probe each): half the
                        # time of a large COPY. Generated rows point at rows just read or written, and on
                        # SQLite (foreign keys on) the same generators run with every check, in the tests.
                        cursor.execute("SET LOCAL session_replication_role = replica")
                    cols = ", ".join(f'"{c}"' for c in columns)
                    with cursor.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
                        for row in rows:
                            copy.write_row(row)
                            count += 1
                raw.commit()
            finally:
                raw.close()
            return count
        marks = ", ".join(f":{i}" for i in range(len(columns)))
        quoted = ", ".join(f'"{c}"' for c in columns)  # some columns are SQL words (``values``)
        statement = text(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})')
        with self.engine.begin() as connection:
            for chunk in _chunks(rows, BATCH):
                connection.execute(
                    statement, [{str(i): _sqlite_value(v) for i, v in enumerate(row)} for row in chunk])
                count += len(chunk)
        return count

    def max_id(self, table: str) -> int:
        """The highest ``id`` in ``table`` (0 when empty), so generated ids continue after existing rows."""
        with self.engine.connect() as connection:
            return int(connection.execute(text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')).scalar_one())

    def columns(self, table: str) -> set[str]:
        """The columns ``table`` has in the database now (a part fills a newer column only where it exists)."""
        return {column["name"] for column in inspect(self.engine).get_columns(table)}

    def reset_sequence(self, table: str) -> None:
        """After loading explicit ids on PostgreSQL, move the table's id sequence past them."""
        if not self.postgres:
            return
        with self.engine.begin() as connection:
            connection.execute(text(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM \"{table}\"), 1))"))


def _may_skip_key_checks(cursor: Any, table: str) -> bool:
    """True when this PostgreSQL session may turn off ``table``'s foreign key triggers for one COPY:
    it is a superuser's, and the table has no trigger of its own (those would be skipped too)."""
    cursor.execute(
        "SELECT current_setting('is_superuser') = 'on' AND NOT EXISTS ("
        "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal)", (f'"{table}"',))
    return bool(cursor.fetchone()[0])


def _sqlite_value(value: Any) -> Any:
    """A datetime as SQLAlchemy stores it on SQLite (naive UTC text), so the product's comparisons
    and ordering on these columns behave as on rows it wrote itself; other values pass unchanged."""
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _chunks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
