"""Review findings: each test demonstrates a bug in the tasks mini-app (expected to fail until fixed)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from miniapps.tasks.models import ProcedureRecord, Report
from tests.miniapps.tasks.conftest import TASKS, assignment_id

HEADER = "unit_id,procedure,received_on,online,due_on,resolved_on\n"
GOOD = "phu-xuan,Đăng ký khai sinh,2025-07-01,online,2025-07-02,2025-07-01\n"


def _plain(api: TestClient) -> TestClient:
    """The same app, answering 500 instead of raising, so the status can be asserted."""
    return TestClient(api.app, raise_server_exceptions=False)


def _records(api: TestClient) -> int:
    with Session(api.app.state.engine) as db:
        return len(db.exec(select(ProcedureRecord.id)).all())


def test_an_oversized_csv_field_is_a_problem_not_a_500(api: TestClient, operator) -> None:
    body = HEADER + GOOD + "kim-long," + "x" * 200_000 + ",2025-07-01,online,2025-07-02,\n"
    response = _plain(api).post(f"{TASKS}/procedures/imports", headers=operator, data={"mode": "keep_good"},
                                files={"file": ("hue.csv", body.encode())})
    assert response.status_code < 500, response.text
    if response.status_code == 201:  # keep_good: the bad row is reported, the good one kept
        assert response.json()["rows_bad"] == 1 and _records(api) == 1


def test_a_nul_byte_in_a_record_is_a_bad_row_not_a_500(api: TestClient, operator) -> None:
    body = HEADER + GOOD + "kim-long,Đăng ký\x00 kết hôn,2025-07-03,online,2025-07-05,\n"
    response = _plain(api).post(f"{TASKS}/procedures/imports", headers=operator, data={"mode": "keep_good"},
                                files={"file": ("hue.csv", body.encode())})
    assert response.status_code == 201, response.text
    assert _records(api) >= 1  # keep_good keeps the good row


def test_a_nul_byte_in_a_task_title_is_a_problem_not_a_500(api: TestClient, department) -> None:
    response = _plain(api).post(f"{TASKS}/tasks", headers=department, json={
        "title": "Rà soát\x00 hồ sơ", "deadline": "2099-01-31", "unit_ids": ["phu-xuan"]})
    assert response.status_code < 500, response.text


def test_a_nan_indicator_value_is_refused(api: TestClient, engine, department, commune_px) -> None:
    created = api.post(f"{TASKS}/tasks", headers=department, json={
        "title": "Tỷ lệ hồ sơ trực tuyến", "deadline": "2099-01-31", "unit_ids": ["phu-xuan"],
        "indicators": [{"name": "Tỷ lệ", "unit_of_measure": "%", "baseline": 50, "target": 90}]})
    assert created.status_code == 201, created.text
    task = created.json()
    indicator = task["indicators"][0]["id"]
    mine = assignment_id(engine, task["id"], "phu-xuan")
    response = _plain(api).post(f"{TASKS}/assignments/{mine}/reports",
                                headers=commune_px | {"content-type": "application/json"},
                                content=f'{{"percent": 50, "values": [{{"indicator_id": {indicator}, "value": NaN}}]}}')
    assert response.status_code == 422, response.text
    with Session(engine) as db:
        assert db.exec(select(Report)).all() == []


def test_an_out_of_range_assignment_id_is_a_404_not_a_500(api: TestClient, commune_px) -> None:
    response = _plain(api).get(f"{TASKS}/assignments/{2**63}", headers=commune_px)
    assert response.status_code in (404, 422), response.text


def test_accepting_a_second_complete_report_rewrites_the_completion(engine, task_for_two) -> None:
    from datetime import UTC, datetime, timedelta

    from miniapps.tasks import service
    from miniapps.tasks.models import Assignment
    from tests.miniapps.tasks.conftest import allow_all, make_report, official

    now = datetime.now(UTC)
    mine = assignment_id(engine, task_for_two, "phu-xuan")
    on_time = make_report(engine, mine, "phu-xuan", percent=100, complete=True, now=now)
    late = make_report(engine, mine, "phu-xuan", percent=100, complete=True, now=now + timedelta(days=12))
    reviewer = official("department_official", "so-tu-phap")
    with Session(engine, expire_on_commit=False) as db:
        service.review_report(db, principal=reviewer, allows=allow_all, report_id=on_time, accept=True)
    with Session(engine, expire_on_commit=False) as db:
        try:
            service.review_report(db, principal=reviewer, allows=allow_all, report_id=late, accept=True)
        except service.TaskError:
            pass  # refusing to accept a report on a completed assignment is a fine answer
    with Session(engine) as db:
        assignment = db.get(Assignment, mine)
        task = db.get(service.Task, task_for_two)
        view = service.view(task, assignment, now + timedelta(days=20))
    # The assignment was completed on time by the first accepted report; it must stay so.
    assert view.status is service.Status.completed_on_time
