"""CSV and XLSX exports of rankings and procedure statistics, for officials' spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.responses import Response

from plugins import DomainError

MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def table_response(header: Sequence[str], rows: Iterable[Sequence[Any]], *, fmt: str, name: str) -> Response:
    """The table as a CSV (UTF-8 with BOM, so Excel reads Vietnamese) or XLSX download."""
    if fmt not in MEDIA:
        raise DomainError(422, "format must be csv or xlsx", field="query.format")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        body = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    else:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet(name[:31])
        sheet.append(list(header))
        for row in rows:
            sheet.append(list(row))
        out = io.BytesIO()
        book.save(out)
        body = out.getvalue()
    return Response(body, media_type=MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


RANKING_HEADER = ("rank", "unit_id", "unit", "score", "on_time_rate", "attainment", "due", "on_time", "overdue")
PROCEDURE_HEADER = ("unit_id", "unit", "received", "online", "online_rate_pct", "resolved", "ahead", "on_time",
                    "late", "on_time_rate_pct")

# Column titles a reader sees in the spreadsheet, per language; ``keys`` keeps the names above for scripts.
TITLES: dict[str, tuple[str, str]] = {
    "rank": ("Hạng", "Rank"), "unit_id": ("Mã đơn vị", "Unit ID"), "unit": ("Đơn vị", "Unit"),
    "score": ("Điểm", "Score"), "on_time_rate": ("Tỷ lệ đúng hạn", "On-time rate"),
    "attainment": ("Mức hoàn thành", "Attainment"), "due": ("Đến hạn", "Due"), "on_time": ("Đúng hạn", "On time"),
    "overdue": ("Quá hạn", "Overdue"), "received": ("Đã tiếp nhận", "Received"), "online": ("Trực tuyến", "Online"),
    "online_rate_pct": ("Tỷ lệ trực tuyến (%)", "Online rate (%)"), "resolved": ("Đã giải quyết", "Resolved"),
    "ahead": ("Trước hạn", "Ahead of time"), "late": ("Trễ hạn", "Late"),
    "on_time_rate_pct": ("Tỷ lệ đúng và trước hạn (%)", "On time or ahead (%)"),
}


def header_row(keys: Sequence[str], style: str) -> list[str]:
    """The header line for ``keys``: titles in ``vi`` or ``en``, or the machine keys themselves (``keys``)."""
    if style == "keys":
        return list(keys)
    return [TITLES[key][0 if style == "vi" else 1] for key in keys]


def ranking_rows(rows: Sequence[dict[str, Any]], names: dict[str, dict[str, str]], locale: str) -> list[list[Any]]:
    """Ranking rows as table cells."""
    return [[r["rank"], r["unit_id"], names.get(r["unit_id"], {}).get(locale, r["unit_id"]), r["score"],
             r["on_time_rate"], r["attainment"], r["due"], r["on_time"], r["overdue"]] for r in rows]


def procedure_rows(rows: Sequence[dict[str, Any]], names: dict[str, dict[str, str]], locale: str) -> list[list[Any]]:
    """Procedure figures as table cells."""
    return [[r["unit_id"], names.get(r["unit_id"], {}).get(locale, r["unit_id"]), r["received"], r["online"],
             r["online_rate"], r["resolved"], r["ahead"], r["on_time"], r["late"], r["on_time_rate"]] for r in rows]
