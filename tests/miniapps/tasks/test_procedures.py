"""Procedure statistics: CSV/XLSX/JSON imports with row-by-row errors, both modes, the figures, and the
demo records that reproduce Hue's published July 2025 figures on the dashboard."""

from __future__ import annotations

import io
from datetime import date

from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlmodel import Session, select

from miniapps.tasks import procedures
from miniapps.tasks.models import ProcedureRecord
from miniapps.tasks.service import assignee_units
from tests.miniapps.tasks.conftest import TASKS

HEADER = "unit_id,procedure,received_on,online,due_on,resolved_on\n"
GOOD = ("phu-xuan,Đăng ký khai sinh,2025-07-01,online,2025-07-02,2025-07-01\n"
        "19804,Chứng thực bản sao,01/07/2025,in_person,2025-07-02,2025-07-02\n")  # Hương An by its official code
BAD = ("nowhere,Đăng ký khai sinh,2025-07-01,online,2025-07-02,\n"
       "kim-long,Đăng ký kết hôn,2025-07-03,online,2025-07-01,\n"
       "kim-long,Đăng ký kết hôn,2025-07-03,maybe,2025-07-05,\n"
       "kim-long,Đăng ký kết hôn,not a date,online,2025-07-05,\n")


def _upload(api: TestClient, who, name: str, body: bytes, mode: str):
    return api.post(f"{TASKS}/procedures/imports", headers=who, data={"mode": mode}, files={"file": (name, body)})


def _count(api: TestClient) -> int:
    with Session(api.app.state.engine) as db:
        return len(db.exec(select(ProcedureRecord.id)).all())


def test_csv_with_bad_rows_keeps_the_good_ones(api: TestClient, operator) -> None:
    response = _upload(api, operator, "hue.csv", (HEADER + GOOD + BAD).encode(), "keep_good")
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["status"], report["rows_total"], report["rows_imported"], report["rows_bad"]) == ("imported", 6, 2, 4)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (4, "unit_id"), (5, "due_on"), (6, "online"), (7, "received_on")]
    assert "nowhere" in report["errors"][0]["reason"]
    assert _count(api) == 2
    again = api.get(f"{TASKS}/procedures/imports/{report['id']}", headers=operator).json()
    assert again["errors"] == report["errors"]


def test_rejecting_the_whole_file_keeps_nothing(api: TestClient, operator) -> None:
    report = _upload(api, operator, "hue.csv", (HEADER + GOOD + BAD).encode(), "reject_file").json()
    assert (report["status"], report["rows_imported"], report["rows_bad"]) == ("rejected", 0, 4)
    assert len(report["errors"]) == 4
    assert _count(api) == 0


def test_xlsx_is_read_in_streaming_mode(api: TestClient, operator) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["unit_id", "procedure", "received_on", "online", "due_on", "resolved_on"])
    sheet.append(["phu-vang", "Đăng ký hộ kinh doanh", date(2025, 7, 2), True, date(2025, 7, 5), date(2025, 7, 6)])
    sheet.append(["phu-vang", "Đăng ký hộ kinh doanh", date(2025, 7, 2), "x", date(2025, 7, 5), None])
    sheet.append(["phu-vang", None, date(2025, 7, 2), True, date(2025, 7, 5), None])
    out = io.BytesIO()
    book.save(out)
    report = _upload(api, operator, "phuvang.xlsx", out.getvalue(), "keep_good").json()
    assert (report["rows_imported"], report["rows_bad"]) == (2, 1)
    assert report["errors"] == [{"row": 4, "field": "procedure", "reason": "procedure is missing"}]
    stats = api.get(f"{TASKS}/procedures/stats", headers=operator).json()
    [phu_vang] = stats["units"]
    assert (phu_vang["received"], phu_vang["online"], phu_vang["late"], phu_vang["resolved"]) == (2, 2, 1, 1)


def test_unusable_files_are_refused_naming_the_file(api: TestClient, operator) -> None:
    for name, body in (("a.txt", b"x"), ("a.xlsx", b"not a zip"), ("a.csv", b"unit,procedure\n")):
        response = _upload(api, operator, name, body, "keep_good")
        assert response.status_code == 422 and response.json()["field"] == "file", response.text
    assert _count(api) == 0


def test_records_through_the_api(api: TestClient, operator, commune_px) -> None:
    body = {"mode": "keep_good", "records": [
        {"unit_id": "phu-xuan", "procedure": "Đăng ký khai sinh", "received_on": "2025-07-01", "online": True,
         "due_on": "2025-07-02", "resolved_on": "2025-07-03"},
        {"unit_id": "phu-xuan", "procedure": "Đăng ký khai sinh", "received_on": "2025-07-01", "online": True,
         "due_on": "2025-07-02", "resolved_on": "2025-06-30"}]}
    report = api.post(f"{TASKS}/procedures/records", headers=operator, json=body).json()
    assert report["errors"] == [{"row": 1, "field": "resolved_on", "reason": "resolved_on is before received_on"}]
    assert api.post(f"{TASKS}/procedures/records", headers=commune_px, json=body).status_code == 403


def test_demo_records_reproduce_the_published_figures(api: TestClient, operator) -> None:
    with Session(api.app.state.engine) as db:
        units = [u.id for u in assignee_units(db)]
        procedures.import_rows(db, procedures.july_records(units), source="demo", mode="reject_file")
        per_unit = procedures.unit_stats(db, date(2025, 7, 1), date(2025, 7, 14))
    city = procedures.city_total(per_unit)
    assert len(per_unit) == 40 and city.received == 17_710 and procedures.pct(city.online_rate) == 75.78
    assert max(per_unit.values(), key=lambda s: s.received).unit_id == "phu-xuan"
    assert per_unit["phu-xuan"].received == 1_758
    best_on_time = max(per_unit.values(), key=lambda s: s.on_time_rate or 0)
    assert (best_on_time.unit_id, best_on_time.within_deadline, best_on_time.resolved) == ("huong-an", 309, 338)
    assert round(100 * best_on_time.on_time_rate) == 91
    best_online = max(per_unit.values(), key=lambda s: s.online_rate or 0)
    assert (best_online.unit_id, best_online.online, best_online.received) == ("phu-vang", 491, 493)
    assert procedures.pct(best_online.online_rate) == 99.59

    page = api.get("/m/tasks/procedures", headers=operator, params={"lang": "en"})
    assert page.status_code == 200
    for shown in ("17,710", "75.78%", "1,758", "91% (309/338)", "99.59% (491/493)", "01/07/2025 – 14/07/2025"):
        assert shown in page.text, shown
    page = api.get("/m/tasks/procedures", headers=operator, params={"lang": "vi"})  # Vietnamese number formats
    for shown in ("17.710", "75,78%", "1.758", "91% (309/338)", "99,59% (491/493)"):
        assert shown in page.text, shown
    api_stats = api.get(f"{TASKS}/procedures/stats", headers=operator, params={"from": "2025-07-01", "to": "2025-07-14"})
    assert api_stats.json()["city"]["online_rate"] == 75.78
    export = api.get(f"{TASKS}/procedures/stats/export", headers=operator, params={"format": "csv"})
    assert export.headers["content-type"].startswith("text/csv")
    assert export.text.splitlines()[-1].startswith("hue,")
    assert ",17710,13421,75.78," in export.text.splitlines()[-1]


def test_the_import_page_lists_bad_rows_and_honours_the_choice(api: TestClient, operator) -> None:
    body = (HEADER + GOOD + BAD).encode()
    kept = api.post("/m/tasks/procedures/import", headers=operator, data={"mode": "keep_good"},
                    files={"file": ("hue.csv", body)})
    assert kept.status_code == 200
    assert "Đã nhập: 2/6" in kept.text and "unknown commune or ward &#39;nowhere&#39;" in kept.text
    rejected = api.post("/m/tasks/procedures/import", headers=operator, data={"mode": "reject_file"},
                        files={"file": ("hue.csv", body)})
    assert "Đã từ chối cả tệp: 0/6" in rejected.text and "due_on is before received_on" in rejected.text
    assert _count(api) == 2
