"""Tasks, assignments and reports through the API: assigning, reporting, reviewing, statuses, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from miniapps.tasks.service import Status, status_of
from tests.miniapps.tasks.conftest import TASKS, assignment_id, make_report, make_task

IN_A_WEEK = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()


def test_status_follows_the_national_rules() -> None:
    deadline = datetime(2025, 7, 31, 17, tzinfo=UTC)
    assert status_of(deadline, deadline - timedelta(hours=1), deadline + timedelta(days=9)) == (Status.completed_on_time, 0)
    assert status_of(deadline, deadline + timedelta(hours=1), deadline + timedelta(days=9)) == (Status.completed_late, 0)
    assert status_of(deadline, None, deadline - timedelta(days=1)) == (Status.in_progress, 0)
    assert status_of(deadline, None, deadline + timedelta(days=3, hours=2)) == (Status.overdue, 3)
    assert status_of(deadline, None, deadline + timedelta(minutes=5)) == (Status.overdue, 1)


def test_a_department_assigns_a_task_to_all_40_units(api: TestClient, department, commune_px, commune_kl) -> None:
    created = api.post(f"{TASKS}/tasks", headers=department, json={
        "title": "Kiểm tra sổ hộ tịch", "deadline": IN_A_WEEK, "all_units": True,
        "indicators": [{"name": "Sổ được số hoá", "unit_of_measure": "%", "baseline": 40, "target": 90}]})
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["assigner_unit_id"] == "so-tu-phap" and task["units"] == 40
    assert task["indicators"][0]["direction"] == ">="
    detail = api.get(f"{TASKS}/tasks/{task['id']}", headers=department).json()
    assert len(detail["assignments"]) == 40
    assert {a["status"] for a in detail["assignments"]} == {"in_progress"}
    # each commune or ward sees only its own assignment
    mine = api.get(f"{TASKS}/tasks/{task['id']}", headers=commune_px).json()["assignments"]
    assert [a["unit_id"] for a in mine] == ["phu-xuan"]
    assert api.get(f"{TASKS}/tasks/{task['id']}", headers=commune_kl).json()["assignments"][0]["unit_id"] == "kim-long"


def test_report_accept_and_complete(api: TestClient, department, commune_px, task_for_two) -> None:
    task = api.get(f"{TASKS}/tasks/{task_for_two}", headers=commune_px).json()
    [mine] = task["assignments"]
    first = api.post(f"{TASKS}/assignments/{mine['id']}/reports", headers=commune_px,
                     json={"percent": 50, "note": "Đã rà soát một nửa", "evidence": ["https://hue.gov.vn/bc/1"]})
    assert first.status_code == 201, first.text
    returned = api.post(f"{TASKS}/reports/{first.json()['id']}/return", headers=department,
                        json={"reason": "Thiếu biên bản kiểm tra"})
    assert returned.status_code == 200 and returned.json()["state"] == "returned"
    final = api.post(f"{TASKS}/assignments/{mine['id']}/reports", headers=commune_px,
                     json={"percent": 100, "complete": True, "note": "Xong"}).json()
    assert api.post(f"{TASKS}/reports/{final['id']}/accept", headers=department).json()["state"] == "accepted"
    after = api.get(f"{TASKS}/assignments/{mine['id']}", headers=commune_px).json()
    assert after["status"] == "completed_on_time" and after["progress"] == 100
    # history kept, newest first, the returned report with its reason
    assert [(r["state"], r["reason"]) for r in after["reports"]] == [
        ("accepted", ""), ("returned", "Thiếu biên bản kiểm tra")]
    again = api.post(f"{TASKS}/assignments/{mine['id']}/reports", headers=commune_px, json={"percent": 100})
    assert again.status_code == 409
    assert api.post(f"{TASKS}/reports/{final['id']}/accept", headers=department).status_code == 409


def test_bad_input_is_a_problem_naming_the_field(api: TestClient, department, commune_px, commune_kl) -> None:
    def field_of(response) -> str:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
        return response.json()["field"]

    past = api.post(f"{TASKS}/tasks", headers=department, json={"title": "x", "deadline": "2020-01-01", "all_units": True})
    assert past.status_code == 422 and field_of(past) == "body.deadline"
    wrong_type = api.post(f"{TASKS}/tasks", headers=department, json={
        "title": "x", "deadline": IN_A_WEEK, "all_units": True,
        "indicators": [{"name": "Tỷ lệ", "unit_of_measure": "%", "baseline": "bốn mươi", "target": 80}]})
    assert wrong_type.status_code == 422 and field_of(wrong_type).startswith("body.indicators.0.baseline")
    not_a_unit = api.post(f"{TASKS}/tasks", headers=department, json={"title": "x", "deadline": IN_A_WEEK,
                                                                      "unit_ids": ["so-xay-dung"]})
    assert not_a_unit.status_code == 422 and field_of(not_a_unit) == "body.unit_ids"
    other_body = api.post(f"{TASKS}/tasks", headers=department, json={"title": "x", "deadline": IN_A_WEEK,
                                                                      "all_units": True, "assigner_unit_id": "so-noi-vu"})
    assert other_body.status_code == 403 and field_of(other_body) == "body.assigner_unit_id"

    task = api.post(f"{TASKS}/tasks", headers=department, json={
        "title": "Số hoá sổ hộ tịch", "deadline": IN_A_WEEK, "unit_ids": ["phu-xuan"],
        "indicators": [{"name": "Sổ số hoá", "unit_of_measure": "quyển", "baseline": 0, "target": 100}]}).json()
    [assignment] = api.get(f"{TASKS}/tasks/{task['id']}", headers=department).json()["assignments"]
    url = f"{TASKS}/assignments/{assignment['id']}/reports"
    indicator = task["indicators"][0]["id"]
    text_value = api.post(url, headers=commune_px, json={"percent": 10, "values": [{"indicator_id": indicator, "value": "12"}]})
    assert text_value.status_code == 422 and field_of(text_value).startswith("body.values.0.value")
    foreign = api.post(url, headers=commune_px, json={"percent": 10, "values": [{"indicator_id": 999, "value": 12}]})
    assert foreign.status_code == 422 and field_of(foreign) == "body.values.0.indicator_id"
    percent = api.post(url, headers=commune_px, json={"percent": 140})
    assert percent.status_code == 422 and field_of(percent) == "body.percent"
    # Kim Long reporting on Phú Xuân's task: it may not even see it
    assert api.post(url, headers=commune_kl, json={"percent": 10}).status_code == 404
    assert api.post(url, headers=department, json={"percent": 10}).status_code == 403
    good = api.post(url, headers=commune_px, json={"percent": 10, "values": [{"indicator_id": indicator, "value": 12}]})
    assert good.status_code == 201 and good.json()["values"] == [{"indicator_id": indicator, "value": 12.0}]
    no_reason = api.post(f"{TASKS}/reports/{good.json()['id']}/return", headers=department, json={"reason": " "})
    assert no_reason.status_code == 422 and field_of(no_reason) == "body.reason"
    # nothing was half-saved: the one good report is the only one
    assert len(api.get(f"{TASKS}/assignments/{assignment['id']}", headers=commune_px).json()["reports"]) == 1


def test_recurring_task_reports_per_period(api: TestClient, department, commune_px) -> None:
    deadline = (datetime.now(UTC) + timedelta(days=100)).date().isoformat()
    task = api.post(f"{TASKS}/tasks", headers=department, json={
        "title": "Báo cáo tháng", "deadline": deadline, "unit_ids": ["phu-xuan"], "recurrence": "monthly"}).json()
    periods = [p["period"] for p in task["report_periods"]]
    assert len(periods) >= 3 and all(len(p) == 7 for p in periods)
    [assignment] = api.get(f"{TASKS}/tasks/{task['id']}", headers=commune_px).json()["assignments"]
    url = f"{TASKS}/assignments/{assignment['id']}/reports"
    missing = api.post(url, headers=commune_px, json={"percent": 30})
    assert missing.status_code == 422 and missing.json()["field"] == "body.period"
    assert api.post(url, headers=commune_px, json={"percent": 30, "period": periods[0]}).status_code == 201


def test_overdue_list_counts_days(api: TestClient, operator, engine) -> None:
    past = datetime.now(UTC) - timedelta(days=20)
    task = make_task(engine, units=("phu-xuan", "kim-long"), now=past, deadline=past + timedelta(days=15))
    done = assignment_id(engine, task, "phu-xuan")
    report = make_report(engine, done, "phu-xuan", percent=100, complete=True, now=past + timedelta(days=2))
    assert api.post(f"{TASKS}/reports/{report}/accept", headers=operator).status_code == 200
    overdue = api.get(f"{TASKS}/overdue", headers=operator).json()
    assert [(o["unit_id"], o["days_overdue"]) for o in overdue] == [("kim-long", 5)]
    statuses = {a["unit_id"]: a["status"] for a in api.get(f"{TASKS}/tasks/{task}", headers=operator).json()["assignments"]}
    assert statuses == {"phu-xuan": "completed_on_time", "kim-long": "overdue"}
    listed = api.get(f"{TASKS}/tasks", headers=operator, params={"status": "overdue"}).json()
    assert [t["by_status"]["overdue"] for t in listed] == [1]
