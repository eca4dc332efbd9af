"""Storage at Hue's volume: rows, bytes with indexes and bytes per row of each big table, projected per year.

Reads a loaded PostgreSQL database (the synthetic city of ``python -m bench.city``, or a copy of
production) in one read-only transaction, and prints for each table that holds rows: its rows, its
bytes (heap and TOAST, indexes, total), bytes per row, and, where Hue's yearly volume is known, the
rows and bytes a year brings. Yearly volumes are the named constants below, each with its source;
tables that grow with another one (photos per report, audiences per notification) take the ratio
measured in the database. Tables whose size is a stock (residents, devices) are projected at Hue's
size instead of per year.

A report, not a benchmark with a ratio: bytes per row do not depend on the machine's load. Exits 2
when the database cannot be read or is not PostgreSQL.

    python -m bench.bench_storage --url postgresql://postgres@127.0.0.1:5432/city_full [--top 30]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from core.db import make_engine, safe_url

# --- Hue's volumes ------------------------------------------------------------------------------------
# Issue 13 ("City scale") and docs/DESIGN "Load to plan for" state these; nothing below is measured.
HUE_RESIDENTS = 1_300_000  # accounts in Hue-S (issue 13, first paragraph)
HUE_DEVICES = 900_000  # push-capable devices (issue 13, first paragraph)
FIELD_REPORTS_A_YEAR = 180_000  # "a year brings about 180,000 field reports" (issue 13)
WARNINGS_A_YEAR = 2_450  # "and 2,450 warnings" (issue 13); each is one floodmap_warning and one notification
FLOOD_STATIONS = 60  # "five years of 10-minute readings for about 60 stations" (issue 13, item 1)
READINGS_A_YEAR = FLOOD_STATIONS * 6 * 24 * 365  # one reading per station every 10 minutes: 3,153,600
# Where no yearly figure is stated, the synthetic city's spans stand in: bench.city loads a table's rows
# over this many years (see each bench/city module), so a year is the rows found divided by it.
NOTIFICATION_YEARS = 2  # bench/city/notifications.py: two years of broadcasts and personal notices
FEED_YEARS = 4  # bench/city/feed.py: 1,000,000 feed items over four years
INTERACTION_YEARS = 5  # bench/city/interaction.py: 1,000,000 answered questions over five years (issue 13)
TASK_YEARS = 2  # bench/city/tasks.py: "tasks for 40 units over 24 months" (issue 13, item 1)
# Below this many rows a table's bytes per row are mostly empty pages and index roots: not projected.
MIN_ROWS_TO_PROJECT = 1_000


@dataclass(frozen=True)
class Volume:
    """How many rows of a table Hue brings: a year's worth, or the stock at Hue's size."""

    rows: float | None = None  # rows a year (or, when ``stock``, rows at Hue's size)
    per: str | None = None  # or: this many rows of the table per row of ``per``, as measured, times its volume
    span_years: float | None = None  # or: the rows found were loaded over this many years
    source: str = ""
    stock: bool = False


VOLUMES: dict[str, Volume] = {
    "user_account": Volume(HUE_RESIDENTS, source="1.3 M residents (stock)", stock=True),
    "device": Volume(HUE_DEVICES, source="900,000 devices (stock)", stock=True),
    "unit_follow": Volume(per="user_account", source="follows per account, measured (stock)", stock=True),
    "inbox_state": Volume(per="user_account", source="'all read' marks per account, measured (stock)", stock=True),
    "feedback_report": Volume(FIELD_REPORTS_A_YEAR, source="180,000 reports a year"),
    "feedback_photo": Volume(per="feedback_report", source="photos per report, measured"),
    "feedback_event": Volume(per="feedback_report", source="timeline events per report, measured"),
    "feedback_follower": Volume(per="feedback_report", source="followers per report, measured"),
    "floodmap_observation": Volume(READINGS_A_YEAR, source="60 stations every 10 minutes"),
    "floodmap_warning": Volume(WARNINGS_A_YEAR, source="2,450 warnings a year"),
    # Warnings alone are 2,450 a year; the synthetic city adds announcements and personal notices.
    "notification": Volume(span_years=NOTIFICATION_YEARS, source="synthetic city: 2 years of notices"),
    "notification_audience": Volume(span_years=NOTIFICATION_YEARS, source="synthetic city: 2 years of notices"),
    "inbox_item": Volume(span_years=NOTIFICATION_YEARS, source="synthetic city: 2 years of personal notices"),
    "feed_item": Volume(span_years=FEED_YEARS, source="synthetic city: 4 years of feed"),
    "feed_item_unit": Volume(span_years=FEED_YEARS, source="synthetic city: 4 years of feed"),
    "interaction_question": Volume(span_years=INTERACTION_YEARS, source="synthetic city: 5 years of questions"),
    "interaction_reply": Volume(span_years=INTERACTION_YEARS, source="synthetic city: 5 years of questions"),
    "interaction_search_entry": Volume(span_years=INTERACTION_YEARS, source="synthetic city: 5 years of questions"),
    # The PostgreSQL search index grows with the entries it indexes (posting chunks per entry, measured); the
    # vocabulary (interaction_term) grows far slower than the entries and is left unprojected.
    "interaction_posting": Volume(per="interaction_search_entry", source="posting chunks per search entry, measured"),
    "interaction_entry_terms": Volume(per="interaction_search_entry", source="one row per search entry"),
    "tasks_task": Volume(span_years=TASK_YEARS, source="synthetic city: 24 months of tasks"),
    "tasks_report": Volume(span_years=TASK_YEARS, source="synthetic city: 24 months of tasks"),
    "tasks_assignment": Volume(span_years=TASK_YEARS, source="synthetic city: 24 months of tasks"),
}


@dataclass
class TableSize:
    """One table as stored now."""

    name: str
    rows: int
    heap_bytes: int  # table and TOAST
    index_bytes: int

    @property
    def total_bytes(self) -> int:
        """Table, TOAST and indexes."""
        return self.heap_bytes + self.index_bytes

    @property
    def bytes_per_row(self) -> float | None:
        """Total bytes over rows (None for an empty table)."""
        return self.total_bytes / self.rows if self.rows else None


def measure(connection: Connection, *, top: int) -> list[TableSize]:
    """The ``top`` largest tables of the public schema with their exact row counts and sizes."""
    names = connection.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' "
        "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT :top"), {"top": top}).scalars().all()
    sizes = []
    for name in names:
        rows = connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
        heap, index = connection.execute(
            text("SELECT pg_table_size(CAST(:t AS regclass)), pg_indexes_size(CAST(:t AS regclass))"),
            {"t": f'"{name}"'}).one()
        sizes.append(TableSize(name, int(rows), int(heap), int(index)))
    return sizes


def yearly_rows(table: str, measured: dict[str, TableSize], *, depth: int = 0) -> float | None:
    """Rows Hue brings to ``table`` a year (or at Hue's size, for stock tables); None when unknown."""
    volume = VOLUMES.get(table)
    if volume is None or depth > 3:
        return None
    if volume.rows is not None:
        return volume.rows
    here = measured.get(table)
    if volume.span_years is not None:
        return here.rows / volume.span_years if here is not None else None
    parent = measured.get(volume.per or "")
    parent_rows = yearly_rows(volume.per or "", measured, depth=depth + 1)
    if parent is None or here is None or not parent.rows or parent_rows is None:
        return None
    return parent_rows * here.rows / parent.rows


def report(sizes: Sequence[TableSize]) -> list[str]:
    """The printed table, a line per table, then the yearly growth of the projected tables."""
    measured = {size.name: size for size in sizes}
    mib = 2**20
    header = (f"{'table':<28}{'rows':>13}{'heap MiB':>10}{'index MiB':>10}{'total MiB':>10}{'B/row':>7}"
              f"{'Hue rows/yr':>14}{'Hue MiB':>10}  source")
    lines = [header]
    growth = stock = 0.0
    for size in sizes:
        per_row = f"{size.bytes_per_row:.0f}" if size.bytes_per_row is not None else "-"
        rows = yearly_rows(size.name, measured)
        volume = VOLUMES.get(size.name)
        hue_rows = hue_mib = "-"
        source = "(no stated volume)"
        if volume is not None:
            source = volume.source
        if rows is not None:
            hue_rows = f"{rows:,.0f}"
            if size.rows >= MIN_ROWS_TO_PROJECT and size.bytes_per_row is not None:
                projected = rows * size.bytes_per_row
                hue_mib = f"{projected / mib:,.0f}"
                if volume is not None and volume.stock:
                    stock += projected
                else:
                    growth += projected
            else:
                source += f"; under {MIN_ROWS_TO_PROJECT:,} rows here, bytes not projected"
        lines.append(f"{size.name:<28}{size.rows:>13,}{size.heap_bytes / mib:>10.1f}{size.index_bytes / mib:>10.1f}"
                     f"{size.total_bytes / mib:>10.1f}{per_row:>7}{hue_rows:>14}{hue_mib:>10}  {source}")
    lines.append(f"\nprojected: {growth / 2**30:,.2f} GiB a year of growth (tables with a yearly volume), "
                 f"{stock / 2**30:,.2f} GiB for Hue's residents and devices (stock)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure the database at ``--url`` and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="postgresql://... of a loaded database (only read)")
    parser.add_argument("--top", type=int, default=30, help="how many of the largest tables (default 30)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("postgresql://", "postgresql+psycopg://")):
        print("error: --url must be a PostgreSQL database (sizes come from pg_total_relation_size)", file=sys.stderr)
        return 2
    engine = make_engine(args.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            connection.execute(text("SET TRANSACTION READ ONLY"))
            sizes = measure(connection, top=args.top)
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        print(f"error: cannot read {safe_url(args.url)}: {exc.__class__.__name__}: {reason}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"storage of {safe_url(args.url)} ({len(sizes)} largest tables)\n")
    for line in report(sizes):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
