"""The city dashboard: received, processed, on time and satisfaction, per unit and per category; exports."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func
from sqlmodel import Session, col, select

from core.units.models import OrgUnit
from miniapps.feedback.models import FeedbackCategory, FeedbackReport

SATISFIED_FROM = 4  # 4 or 5 stars counts as satisfied


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
                "satisfaction": self.satisfaction, "average_rating": self.average_rating}


def _lines(session: Session, group: Any, names: dict[str, tuple[str, str]], where: list[Any]) -> list[Line]:
    processed = col(FeedbackReport.processed_at).is_not(None)
    rows = session.exec(select(
        group, func.count(),
        func.sum(case((processed, 1), else_=0)),
        func.sum(case((and_(processed, FeedbackReport.processed_at <= FeedbackReport.due_at), 1), else_=0)),
        func.count(FeedbackReport.rating),
        func.sum(case((FeedbackReport.rating >= SATISFIED_FROM, 1), else_=0)),
        func.coalesce(func.sum(FeedbackReport.rating), 0),
    ).where(*where).group_by(group))
    lines = [Line(key, *names.get(key, (key, key)), int(n), int(p or 0), int(t or 0), int(r or 0), int(s or 0),
                  int(total or 0)) for key, n, p, t, r, s, total in rows]
    return sorted(lines, key=lambda line: (-line.received, line.key))


def dashboard(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Totals, per handling unit and per category, for reports created in [since, until)."""
    where: list[Any] = []
    if since is not None:
        where.append(FeedbackReport.created_at >= since)
    if until is not None:
        where.append(FeedbackReport.created_at < until)
    units = {u.id: (u.name_vi, u.name_en) for u in session.exec(select(OrgUnit))}
    categories = {c.id: (c.name_vi, c.name_en) for c in session.exec(select(FeedbackCategory))}
    per_unit = _lines(session, FeedbackReport.handling_unit_id, units, where)
    per_category = _lines(session, FeedbackReport.category_id, categories, where)
    total = Line("all", "Toàn thành phố", "Whole city", *(sum(getattr(line, f) for line in per_unit) for f in (
        "received", "processed", "on_time", "rated", "satisfied", "rating_sum")))
    return {"total": total, "per_unit": per_unit, "per_category": per_category}


HEADERS = ("group", "key", "name_vi", "name_en", "received", "processed", "processed_rate", "on_time",
           "on_time_rate", "rated", "satisfaction", "average_rating")


def _rows(board: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for group, lines in (("city", [board["total"]]), ("unit", board["per_unit"]), ("category", board["per_category"])):
        for line in lines:
            data = line.as_dict()
            rows.append([group, *(round(data[h], 4) if isinstance(data[h], float) else data[h] for h in HEADERS[1:])])
    return rows


def to_csv(board: dict[str, Any]) -> bytes:
    """The dashboard as UTF-8 CSV (with a BOM so spreadsheet programs read Vietnamese correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    writer.writerows(["" if v is None else v for v in row] for row in _rows(board))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(board: dict[str, Any]) -> bytes:
    """The dashboard as an XLSX workbook, one sheet."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "feedback"
    sheet.append(list(HEADERS))
    for row in _rows(board):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
