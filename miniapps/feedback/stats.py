"""The city dashboard: received, processed, on time and satisfaction, per unit and per category; exports."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import and_, case, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from miniapps.feedback.models import FeedbackCategory, FeedbackReport
from miniapps.feedback.service import OPEN_STATES
from plugins import OrgUnit

SATISFIED_FROM = 4  # 4 or 5 stars counts as satisfied
EXPORT_BATCH = 2000  # rows fetched from the server-side cursor at a time


@dataclass
class Line:
    """One row of the dashboard."""

    key: str
    name_vi: str
    name_en: str
    received: int
    processed: int
    on_time: int
    rated: int
    satisfied: int
    rating_sum: int
    overdue: int = 0
    processing_hours: float = 0.0  # summed over processed reports, for the average

    @property
    def average_processing_hours(self) -> float | None:
        """Mean hours from filing to first processing (resolved, rejected or duplicate)."""
        return round(self.processing_hours / self.processed, 2) if self.processed else None

    @property
    def processed_rate(self) -> float | None:
        """Share of received reports processed."""
        return self.processed / self.received if self.received else None

    @property
    def on_time_rate(self) -> float | None:
        """Share of processed reports processed by their deadline."""
        return self.on_time / self.processed if self.processed else None

    @property
    def satisfaction(self) -> float | None:
        """Share of ratings of 4 or 5 stars."""
        return self.satisfied / self.rated if self.rated else None

    @property
    def average_rating(self) -> float | None:
        """Mean stars."""
        return self.rating_sum / self.rated if self.rated else None

    def as_dict(self) -> dict[str, Any]:
        """The row with its rates, for JSON."""
        return {**asdict(self), "processed_rate": self.processed_rate, "on_time_rate": self.on_time_rate,
                "satisfaction": self.satisfaction, "average_rating": self.average_rating,
                "average_processing_hours": self.average_processing_hours}


def _hours(session: Session, start: Any, end: Any) -> Any:
    """``end - start`` in hours, in the database's own date arithmetic."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _cells(session: Session, where: list[Any], now: datetime) -> list[tuple[Any, ...]]:
    """Figures per (handling unit, category) in one pass over the window's reports: conditional sums only,
    no report reaches Python; the per-unit and per-category lines are added up from these (at most a few
    hundred) cells."""
    processed = col(FeedbackReport.processed_at).is_not(None)
    overdue = and_(col(FeedbackReport.state).in_(list(OPEN_STATES)), FeedbackReport.due_at < now)
    return list(session.exec(select(
        FeedbackReport.handling_unit_id, FeedbackReport.category_id, func.count(),
        func.sum(case((processed, 1), else_=0)),
        func.sum(case((and_(processed, FeedbackReport.processed_at <= FeedbackReport.due_at), 1), else_=0)),
        func.count(FeedbackReport.rating),
        func.sum(case((FeedbackReport.rating >= SATISFIED_FROM, 1), else_=0)),
        func.coalesce(func.sum(FeedbackReport.rating), 0),
        func.sum(case((overdue, 1), else_=0)),
        func.coalesce(func.sum(_hours(session, FeedbackReport.created_at, FeedbackReport.processed_at)), 0),
    ).where(*where).group_by(FeedbackReport.handling_unit_id, FeedbackReport.category_id)))


def _lines(cells: list[tuple[Any, ...]], position: int, names: dict[str, tuple[str, str]]) -> list[Line]:
    sums: dict[str, list[float]] = {}
    for cell in cells:
        figures = sums.setdefault(cell[position], [0] * 8)
        for index, value in enumerate(cell[2:]):
            figures[index] += value or 0
    # mypy cannot count starred arguments: two names, seven counts and a mean, as Line declares.
    lines = [Line(key, *names.get(key, (key, key)), *(int(v) for v in figures[:7]), float(figures[7]))  # type: ignore[call-arg]
             for key, figures in sums.items()]
    return sorted(lines, key=lambda line: (-line.received, line.key))


def dashboard(session: Session, *, since: datetime | None = None, until: datetime | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Totals, per handling unit and per category, for reports created in [since, until)."""
    now = now or datetime.now(UTC)
    units = {u.id: (u.name_vi, u.name_en) for u in session.exec(select(OrgUnit))}
    categories = {c.id: (c.name_vi, c.name_en) for c in session.exec(select(FeedbackCategory))}
    cells = _cells(session, _window(since, until), now)
    per_unit = _lines(cells, 0, units)
    per_category = _lines(cells, 1, categories)
    total = Line("all", "Toàn thành phố", "Whole city", *(sum(getattr(line, f) for line in per_unit) for f in (
        "received", "processed", "on_time", "rated", "satisfied", "rating_sum", "overdue", "processing_hours")))
    return {"total": total, "per_unit": per_unit, "per_category": per_category}


def _window(since: datetime | None, until: datetime | None) -> list[Any]:
    where: list[Any] = []
    if since is not None:
        where.append(FeedbackReport.created_at >= since)
    if until is not None:
        where.append(FeedbackReport.created_at < until)
    return where


HEADERS = ("group", "key", "name_vi", "name_en", "received", "processed", "processed_rate", "on_time",
           "on_time_rate", "overdue", "average_processing_hours", "rated", "satisfaction", "average_rating")

# What a person reading the export in a spreadsheet sees above each column, per language; ``keys`` keeps
# the machine names above for scripts that read them.
COLUMN_TITLES: dict[str, tuple[str, str]] = {
    "group": ("Nhóm", "Group"), "key": ("Mã", "Key"), "name_vi": ("Tên (tiếng Việt)", "Name (Vietnamese)"),
    "name_en": ("Tên (tiếng Anh)", "Name (English)"), "received": ("Đã tiếp nhận", "Received"),
    "processed": ("Đã xử lý", "Processed"), "processed_rate": ("Tỷ lệ đã xử lý", "Processed rate"),
    "on_time": ("Đúng hạn", "On time"), "on_time_rate": ("Tỷ lệ đúng hạn", "On-time rate"),
    "overdue": ("Quá hạn", "Overdue"), "average_processing_hours": ("Thời gian xử lý trung bình (giờ)",
                                                                   "Average processing time (hours)"),
    "rated": ("Đã đánh giá", "Rated"), "satisfaction": ("Tỷ lệ hài lòng", "Satisfaction"),
    "average_rating": ("Điểm đánh giá trung bình", "Average rating"),
    "id": ("Mã phản ánh", "Report ID"), "created_at": ("Thời điểm gửi (UTC)", "Filed at (UTC)"),
    "category_id": ("Lĩnh vực", "Category"), "unit_id": ("Đơn vị", "Unit"),
    "handling_unit_id": ("Đơn vị xử lý", "Handling unit"), "state": ("Trạng thái", "State"),
    "urgent": ("Khẩn cấp", "Urgent"), "due_at": ("Hạn xử lý (UTC)", "Due (UTC)"),
    "processed_at": ("Thời điểm xử lý (UTC)", "Processed at (UTC)"), "rating": ("Đánh giá", "Rating"),
    "lat": ("Vĩ độ", "Latitude"), "lon": ("Kinh độ", "Longitude"), "address": ("Địa chỉ", "Address"),
    "description": ("Nội dung", "Description"),
}
HEADER_STYLES = ("vi", "en", "keys")


def header_row(keys: tuple[str, ...], style: str) -> list[str]:
    """The header line for ``keys``: titles in ``vi`` or ``en``, or the machine keys themselves (``keys``)."""
    if style == "keys":
        return list(keys)
    return [COLUMN_TITLES[key][0 if style == "vi" else 1] for key in keys]


def _rows(board: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for group, lines in (("city", [board["total"]]), ("unit", board["per_unit"]), ("category", board["per_category"])):
        for line in lines:
            data = line.as_dict()
            rows.append([group, *(round(data[h], 4) if isinstance(data[h], float) else data[h] for h in HEADERS[1:])])
    return rows


def _csv_line(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else v for v in values])
    return out.getvalue()


def csv_lines(board: dict[str, Any], style: str = "keys") -> Iterator[str]:
    """The dashboard as UTF-8 CSV lines (a BOM first, so spreadsheet programs read Vietnamese correctly)."""
    yield "\ufeff" + _csv_line(header_row(HEADERS, style))
    for row in _rows(board):
        yield _csv_line(row)


def to_xlsx(board: dict[str, Any], style: str = "keys") -> IO[bytes]:
    """The dashboard as an XLSX workbook written row by row (write-only) to a spooled file, rewound."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("feedback")
    sheet.append(header_row(HEADERS, style))
    for row in _rows(board):
        sheet.append(row)
    # Past 4 MB it goes to disk, not memory; the caller streams and closes it.
    spooled = tempfile.SpooledTemporaryFile(max_size=4 * 2**20)  # noqa: SIM115
    book.save(spooled)
    spooled.seek(0)
    return spooled


def chunks_of(stream: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Read ``stream`` in chunks, then close it."""
    with stream:
        while chunk := stream.read(size):
            yield chunk


REPORT_HEADERS = ("id", "created_at", "category_id", "unit_id", "handling_unit_id", "state", "urgent", "due_at",
                  "processed_at", "overdue", "rating", "lat", "lon", "address", "description")


def report_lines(engine: Engine, *, since: datetime | None = None, until: datetime | None = None,
                 now: datetime | None = None, style: str = "keys") -> Iterator[str]:
    """Every report created in [since, until) as CSV lines, oldest first, read from a server-side cursor.

    Rows arrive ``EXPORT_BATCH`` at a time, so memory stays the same for 100 or 360,000 reports.
    """
    now = now or datetime.now(UTC)
    columns = (FeedbackReport.id, FeedbackReport.created_at, FeedbackReport.category_id, FeedbackReport.unit_id,
               FeedbackReport.handling_unit_id, FeedbackReport.state, FeedbackReport.urgent, FeedbackReport.due_at,
               FeedbackReport.processed_at, FeedbackReport.rating, FeedbackReport.lat, FeedbackReport.lon,
               FeedbackReport.address, FeedbackReport.description)
    yield "\ufeff" + _csv_line(header_row(REPORT_HEADERS, style))
    with Session(engine) as session:
        rows = session.exec(select(*columns).where(*_window(since, until)).order_by(col(FeedbackReport.id))
                            .execution_options(yield_per=EXPORT_BATCH))
        for r in rows:
            due = r.due_at if r.due_at.tzinfo else r.due_at.replace(tzinfo=UTC)
            yield _csv_line((r.id, _stamp(r.created_at), r.category_id, r.unit_id, r.handling_unit_id, r.state.value,
                             r.urgent, _stamp(r.due_at), _stamp(r.processed_at), r.state in OPEN_STATES and due < now,
                             r.rating, r.lat, r.lon, r.address, r.description))


def _stamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC (SQLite gives naive UTC back)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
