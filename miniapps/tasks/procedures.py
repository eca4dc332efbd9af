"""Administrative-procedure statistics: streaming imports (CSV, XLSX, JSON) with bad rows reported row
by row, per-unit figures for a date range, and the demo records that reproduce Hue's published July
2025 figures exactly."""

from __future__ import annotations

import csv
import io
import random
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from sqlalchemy import func, insert, text
from sqlmodel import Session, col, select

from miniapps.tasks import cache
from miniapps.tasks.models import ProcedureDay, ProcedureImport, ProcedureRecord
from miniapps.tasks.service import ASSIGNEE_KINDS, CONTROL_CHARACTERS, TaskError
from plugins import OrgUnit, fold

COLUMNS = ("unit_id", "procedure", "received_on", "online", "due_on", "resolved_on")
REQUIRED = ("unit_id", "procedure", "received_on", "online", "due_on")
MODES = ("keep_good", "reject_file")
BATCH = 5000
ERRORS_KEPT = 1000  # bad rows listed in full; beyond that only counted
ONLINE_WORDS = {"1": True, "true": True, "yes": True, "online": True, "truc tuyen": True, "x": True,
                "0": False, "false": False, "no": False, "in_person": False, "in person": False,
                "truc tiep": False, "": None}


# --- Parsing one row ---------------------------------------------------------------------------------------


class RowError(ValueError):
    """A bad row: which column and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _day(value: Any, name: str, *, required: bool = True) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = "" if value is None else str(value).strip()
    if not text:
        if required:
            raise RowError(name, f"{name} is missing")
        return None
    try:
        if "/" in text:  # 01/07/2025, as Vietnamese offices write dates
            day, month, year = (int(p) for p in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text[:10])
    except ValueError:
        raise RowError(name, f"{name} {text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)") from None


def _online(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    word = fold("" if value is None else str(value)).strip()
    found = ONLINE_WORDS.get(word)
    if found is None:
        raise RowError("online", f"online {value!r} must be online/in_person (or true/false)")
    return found


def parse_row(raw: Mapping[str, Any], units: Mapping[str, str]) -> dict[str, Any]:
    """A checked record from one input row; RowError names the column at fault."""
    for name in COLUMNS:  # other keys are ignored, so only these can reach the database
        value = raw.get(name)
        # PostgreSQL cannot store NUL in text: refuse the row here rather than fail the whole insert
        if isinstance(value, str) and "\x00" in value:
            raise RowError(name, f"{name} contains a NUL character")
    unit_text = str(raw.get("unit_id") or "").strip()
    unit_id = units.get(unit_text) or units.get(unit_text.lower())
    if unit_id is None:
        raise RowError("unit_id", f"unknown commune or ward {unit_text!r}" if unit_text else "unit_id is missing")
    procedure = str(raw.get("procedure") or "").strip()
    if not procedure:
        raise RowError("procedure", "procedure is missing")
    if len(procedure) > 200:
        raise RowError("procedure", "procedure is longer than 200 characters")
    received = _day(raw.get("received_on"), "received_on")
    online = _online(raw.get("online"))
    due = _day(raw.get("due_on"), "due_on")
    resolved = _day(raw.get("resolved_on"), "resolved_on", required=False)
    assert received is not None and due is not None
    if due < received:
        raise RowError("due_on", "due_on is before received_on")
    if resolved is not None and resolved < received:
        raise RowError("resolved_on", "resolved_on is before received_on")
    return {"unit_id": unit_id, "procedure": procedure, "received_on": received, "online": online,
            "due_on": due, "resolved_on": resolved}


def unit_lookup(session: Session) -> dict[str, str]:
    """Communes and wards by our id and by official code."""
    found: dict[str, str] = {}
    for unit in session.exec(select(OrgUnit).where(col(OrgUnit.kind).in_(ASSIGNEE_KINDS))):
        found[unit.id] = unit.id
        if unit.code:
            found[unit.code] = unit.id
    return found


# --- Reading files, row by row --------------------------------------------------------------------------


@dataclass
class Unreadable:
    """A CSV record the reader could not read; ``column`` is where, when known; ``fatal`` when the reader
    cannot find the next record boundary and the rest of the file is lost."""

    reason: str
    column: int | None = None
    fatal: bool = False


def _rows_from(header: Iterable[Any], lines: Iterator[Iterable[Any] | Unreadable],
               ) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    names = [fold(str(h or "")).strip().replace(" ", "_") for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise TaskError(422, f"the header row lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}",
                        field="file")
    for number, values in enumerate(lines, start=2):  # row 1 is the header, as a spreadsheet counts
        if isinstance(values, Unreadable):
            if values.fatal:
                raise TaskError(422, f"row {number} cannot be read ({values.reason}), nor can the rest of the "
                                     "file", field="file")
            column = names[values.column] if values.column is not None and values.column < len(names) else "row"
            yield number, RowError(column or "row", values.reason)
            continue
        values = list(values)
        if not any(v not in (None, "") for v in values):
            continue
        yield number, dict(zip(names, values, strict=False))


class _Lines:
    """The text lines handed to the CSV reader, remembering those of the record being read."""

    def __init__(self, text: Iterator[str]) -> None:
        self.text = text
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.text)
        self.taken.append(line)
        return line


def _records(reader: Iterator[list[str]], lines: _Lines) -> Iterator[list[str] | Unreadable]:
    """The reader's records, with the ones it fails on (a field over the size limit) as ``Unreadable``."""
    while True:
        lines.taken.clear()
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            taken = "".join(lines.taken)
            # The reader drops the rest of the line it failed on. Without a quote in the record that line
            # ended it, so the next line starts a record; inside a quoted field the next line may be the
            # field's middle, and reading on would make up rows.
            if '"' in taken or not lines.taken:
                yield Unreadable(str(exc), fatal=True)
                return
            limit = csv.field_size_limit()
            fields = taken.rstrip("\r\n").split(",")
            column = next((n for n, f in enumerate(fields) if len(f) > limit), None)
            reason = (f"a field is longer than the {limit} characters a CSV field may hold" if column is not None
                      else f"the row cannot be read: {exc}")
            yield Unreadable(reason, column)


def csv_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Numbered rows of a UTF-8 CSV file (a byte stream), read as they come; unreadable ones as RowError."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    lines = _Lines(text)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise TaskError(422, "the file is empty", field="file") from None
    except UnicodeDecodeError:
        raise TaskError(422, "the file is not UTF-8 text", field="file") from None
    except csv.Error as exc:
        raise TaskError(422, f"the header row cannot be read: {exc}", field="file") from None
    try:
        yield from _rows_from(header, _records(reader, lines))
    except UnicodeDecodeError:
        raise TaskError(422, "the file is not UTF-8 text", field="file") from None


def xlsx_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Numbered rows of the first sheet of an XLSX workbook, streamed (openpyxl read-only mode)."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise TaskError(422, "the file is not an XLSX workbook", field="file") from None
    try:
        lines = book.worksheets[0].iter_rows(values_only=True)
        header = next(lines, None)
        if header is None:
            raise TaskError(422, "the file is empty", field="file")
        yield from _rows_from(header, lines)
    finally:
        book.close()


# --- Importing --------------------------------------------------------------------------------------------


def import_rows(session: Session, rows: Iterable[tuple[int, Mapping[str, Any] | RowError]], *, source: str,
                mode: str, filename: str = "", created_by: int | None = None, batch_size: int = BATCH) -> ProcedureImport:
    """Check and insert rows in batches inside one transaction. ``keep_good`` keeps the good rows;
    ``reject_file`` keeps nothing when any row is bad. Either way every bad row is reported."""
    if mode not in MODES:
        raise TaskError(422, f"mode must be one of {', '.join(MODES)}", field="mode")
    units = unit_lookup(session)
    filename = CONTROL_CHARACTERS.sub("", filename)  # an uploaded name may carry NUL, which PostgreSQL refuses
    record = ProcedureImport(source=source, filename=filename[:300], mode=mode, status="imported",
                             created_by=created_by, created_at=datetime.now(UTC))
    session.add(record)
    session.flush()
    batch: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    total = good = bad = 0
    try:
        for number, raw in rows:
            total += 1
            try:
                if isinstance(raw, RowError):  # the reader already found it bad
                    raise raw
                row = parse_row(raw, units)
            except RowError as exc:
                bad += 1
                if len(errors) < ERRORS_KEPT:
                    errors.append({"row": number, "field": exc.field, "reason": exc.reason})
                continue
            good += 1
            if bad and mode == "reject_file":
                continue  # the file is lost anyway: keep checking, stop writing
            row["import_id"] = record.id
            batch.append(row)
            if len(batch) >= batch_size:
                _write(session, batch)
                batch.clear()
        if total == 0:
            raise TaskError(422, "the file has no rows", field="file")
        if bad and mode == "reject_file":
            session.rollback()
            record = ProcedureImport(source=source, filename=filename[:300], mode=mode, status="rejected",
                                     created_by=created_by, created_at=datetime.now(UTC))
            session.add(record)
        else:
            if batch:
                _write(session, batch)
            add_to_days(session, record.id or 0)
    except BaseException:
        session.rollback()
        raise
    record.rows_total, record.rows_good, record.rows_bad, record.errors = total, good, bad, errors
    if record.status == "rejected":
        record.rows_good = 0
    session.add(record)
    cache.changed(session)  # the host's ranking cache forgets as this commits
    session.commit()
    session.refresh(record)
    return record


_RECORD_COLUMNS = ("import_id", *COLUMNS)


def _write(session: Session, batch: list[dict[str, Any]]) -> None:
    """Insert a batch of checked records in the session's transaction: COPY on PostgreSQL (several times
    faster than a multi-row INSERT for thousands of rows), an executemany INSERT elsewhere."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(ProcedureRecord.__table__), batch)  # type: ignore[attr-defined]
        return
    names = ", ".join(_RECORD_COLUMNS)
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(f"COPY tasks_procedure_record ({names}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(tuple(row[name] for name in _RECORD_COLUMNS))


def import_json(record: ProcedureImport) -> dict[str, Any]:
    """An import's report in the API's form."""
    return {"id": record.id, "source": record.source, "filename": record.filename, "mode": record.mode,
            "status": record.status, "rows_total": record.rows_total, "rows_imported": record.rows_good,
            "rows_bad": record.rows_bad, "errors": record.errors,
            "errors_listed": len(record.errors), "created_at": record.created_at.isoformat()}


# --- Statistics ------------------------------------------------------------------------------------------


@dataclass
class UnitStats:
    """One unit's (or the city's) procedure figures for a date range."""

    unit_id: str
    received: int = 0
    online: int = 0
    resolved: int = 0
    ahead: int = 0
    on_time: int = 0
    late: int = 0

    @property
    def online_rate(self) -> float | None:
        """Share of records submitted online."""
        return self.online / self.received if self.received else None

    @property
    def within_deadline(self) -> int:
        """Records resolved ahead of schedule or on the due day."""
        return self.ahead + self.on_time

    @property
    def on_time_rate(self) -> float | None:
        """Share of resolved records resolved by their due date (ahead of schedule or on time)."""
        return self.within_deadline / self.resolved if self.resolved else None

    def add(self, other: UnitStats) -> None:
        """Add another unit's figures (for the city total)."""
        for name in ("received", "online", "resolved", "ahead", "on_time", "late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_json(self) -> dict[str, Any]:
        """The API's form, rates as percentages to two decimals."""
        return {"unit_id": self.unit_id, "received": self.received, "online": self.online,
                "online_rate": pct(self.online_rate), "resolved": self.resolved, "ahead": self.ahead,
                "on_time": self.on_time, "late": self.late, "within_deadline": self.within_deadline,
                "on_time_rate": pct(self.on_time_rate)}


def pct(rate: float | None) -> float | None:
    """A rate as a percentage rounded to two decimals (75.78)."""
    return None if rate is None else round(100 * rate, 2)


# One import's records added to the daily figures; ON CONFLICT adds to a day other imports already counted.
_ADD_TO_DAYS = text(
    "INSERT INTO tasks_procedure_day (day, unit_id, received, online, resolved, ahead, on_time, late) "
    "SELECT received_on, unit_id, COUNT(*), "
    "SUM(CASE WHEN online THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN resolved_on IS NOT NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN resolved_on < due_on THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN resolved_on = due_on THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN resolved_on > due_on THEN 1 ELSE 0 END) "
    "FROM tasks_procedure_record WHERE import_id = :import_id GROUP BY received_on, unit_id "
    "ON CONFLICT (day, unit_id) DO UPDATE SET "
    + ", ".join(f"{c} = tasks_procedure_day.{c} + excluded.{c}"
                for c in ("received", "online", "resolved", "ahead", "on_time", "late"))
)


def add_to_days(session: Session, import_id: int) -> int:
    """Add an import's records to the daily per-unit figures, in the caller's transaction; returns the
    (day, unit) rows written. Every import calls it once, right after inserting its records."""
    return session.execute(_ADD_TO_DAYS, {"import_id": import_id}).rowcount or 0


def unit_stats(session: Session, first: date, last: date) -> dict[str, UnitStats]:
    """Per-unit figures for records received from ``first`` to ``last`` inclusive.

    Read from the daily figures: at most 40 units x the days asked for, however many records there are."""
    d = ProcedureDay
    query = (
        select(d.unit_id, func.sum(d.received), func.sum(d.online), func.sum(d.resolved), func.sum(d.ahead),
               func.sum(d.on_time), func.sum(d.late))
        .where(col(d.day) >= first, col(d.day) <= last).group_by(d.unit_id)
    )
    return {unit: UnitStats(unit, *(int(v or 0) for v in values)) for unit, *values in session.exec(query)}


def city_total(per_unit: Mapping[str, UnitStats]) -> UnitStats:
    """The figures of all units together."""
    total = UnitStats("hue")
    for stats in per_unit.values():
        total.add(stats)
    return total


def data_range(session: Session) -> tuple[date, date] | None:
    """The first and last day any record was received, or None without records."""
    first, last = session.exec(select(func.min(ProcedureDay.day), func.max(ProcedureDay.day))).one()
    if first is None:
        return None
    # SQLite hands back text from aggregates
    return (date.fromisoformat(str(first)), date.fromisoformat(str(last)))


# --- Demo records: Hue's published figures for 1 to 14 July 2025 -------------------------------------------

JULY_FIRST, JULY_LAST = date(2025, 7, 1), date(2025, 7, 14)
PUBLISHED = {
    "received": 17_710, "online": 13_421,  # 13,421 / 17,710 = 75.78 %
    "most_received": ("phu-xuan", 1_758),
    "best_on_time": ("huong-an", 309, 338),  # 91 %
    "best_online": ("phu-vang", 491, 493),  # 99.59 %
}
# (procedure, days allowed to resolve it)
PROCEDURES = (
    ("Chứng thực bản sao từ bản chính", 1), ("Đăng ký khai sinh", 1), ("Đăng ký khai tử", 1),
    ("Đăng ký kết hôn", 3), ("Xác nhận tình trạng hôn nhân", 3), ("Đăng ký hộ kinh doanh", 3),
    ("Đăng ký thường trú", 7), ("Trợ cấp xã hội hằng tháng", 10),
    ("Cấp giấy phép xây dựng nhà ở riêng lẻ", 15), ("Cấp giấy chứng nhận quyền sử dụng đất lần đầu", 20),
)


@dataclass
class UnitPlan:
    """How many of one unit's demo records are received, online, resolved ahead, on time, late, open."""

    unit_id: str
    received: int
    online: int
    ahead: int
    on_time: int
    late: int

    @property
    def open(self) -> int:
        """Records not resolved yet."""
        return self.received - self.ahead - self.on_time - self.late


def _spread(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders), summing exactly."""
    shares = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def july_plan(unit_ids: list[str]) -> list[UnitPlan]:
    """Per-unit figures that add up exactly to the published ones, with the published leaders leading."""
    rng = random.Random(20250714)
    pinned = {"phu-xuan": (1_758, 1_290), "phu-vang": (493, 491), "huong-an": (338, 262)}
    others = [u for u in unit_ids if u not in pinned]
    counts = _spread(PUBLISHED["received"] - sum(c for c, _ in pinned.values()),
                     [rng.uniform(0.6, 2.0) for _ in others])
    online_left = PUBLISHED["online"] - sum(o for _, o in pinned.values())
    online = _spread(online_left, [c * rng.uniform(0.6, 0.92) for c in counts])
    plans = []
    for unit_id, received, on in zip(others, counts, online, strict=True):
        on = min(on, int(received * 0.97))
        resolved = received - max(1, received // 40)
        within = min(int(resolved * rng.uniform(0.70, 0.90)), resolved)
        ahead = int(within * 0.8)
        plans.append(UnitPlan(unit_id, received, on, ahead, within - ahead, resolved - within))
    # the online cap above may have dropped a few; give them back to the units with room
    short = online_left - sum(p.online for p in plans)
    for plan in sorted(plans, key=lambda p: p.unit_id):
        room = int(plan.received * 0.97) - plan.online
        step = min(room, short)
        plan.online += step
        short -= step
    phu_xuan_within = int((1_758 - 30) * 0.82)
    plans.append(UnitPlan("phu-xuan", 1_758, 1_290, int(phu_xuan_within * 0.8),
                          phu_xuan_within - int(phu_xuan_within * 0.8), 1_758 - 30 - phu_xuan_within))
    plans.append(UnitPlan("phu-vang", 493, 491, 380, 40, 73 - 5))
    plans.append(UnitPlan("huong-an", 338, 262, 250, 59, 29))
    return sorted(plans, key=lambda p: p.unit_id)


def july_records(unit_ids: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The demo records, deterministic: the same rows on every run, as numbered import rows."""
    rng = random.Random(17710)
    number = 1
    for plan in july_plan(unit_ids):
        outcomes = (["ahead"] * plan.ahead + ["on_time"] * plan.on_time + ["late"] * plan.late
                    + ["open"] * plan.open)
        channels = [True] * plan.online + [False] * (plan.received - plan.online)
        rng.shuffle(outcomes)
        rng.shuffle(channels)
        for k in range(plan.received):
            procedure, days = PROCEDURES[rng.randrange(len(PROCEDURES))]
            received = JULY_FIRST + timedelta(days=k % 14)
            due = received + timedelta(days=days)
            outcome = outcomes[k]
            resolved = {"ahead": received + timedelta(days=rng.randrange(days)), "on_time": due,
                        "late": due + timedelta(days=rng.randint(1, 5)), "open": None}[outcome]
            number += 1
            yield number, {"unit_id": plan.unit_id, "procedure": procedure, "received_on": received,
                           "online": channels[k], "due_on": due, "resolved_on": resolved}
