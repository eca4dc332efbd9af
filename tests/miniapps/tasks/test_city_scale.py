"""What keeps the tasks mini-app's hot paths bounded at city size: the procedure statistics read daily
figures kept by each import, the task list is paged by a keyset cursor with its counts from one grouped
query, and the overdue lists are cut off in the database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from miniapps.tasks import procedures, service
from miniapps.tasks.models import ProcedureDay, ProcedureRecord
from tests.miniapps.tasks.conftest import TASKS, allow_all, assignment_id, make_report, make_task, official

HEADER = "unit_id,procedure,received_on,online,due_on,resolved_on\n"


def _csv(rows: list[tuple[str, str, bool, str, str]]) -> bytes:
    lines = [f"{unit},Đăng ký khai sinh,{received},{'online' if online else 'in_person'},{due},{resolved}\n"
             for unit, received, online, due, resolved in rows]
    return (HEADER + "".join(lines)).encode()


def _upload(api: TestClient, who, body: bytes, mode: str = "keep_good"):
    return api.post(f"{TASKS}/procedures/imports", headers=who, data={"mode": mode}, files={"file": ("a.csv", body)})


def _from_records(db: Session, first: date, last: date) -> dict[str, tuple[int, ...]]:
    """The figures counted straight from the records, as the statistics were computed before daily figures."""
    r = ProcedureRecord
    query = (select(r.unit_id, func.count(), func.sum(case((col(r.online), 1), else_=0)),
                    func.sum(case((col(r.resolved_on).is_not(None), 1), else_=0)),
                    func.sum(case((col(r.resolved_on) < r.due_on, 1), else_=0)),
                    func.sum(case((col(r.resolved_on) == r.due_on, 1), else_=0)),
                    func.sum(case((col(r.resolved_on) > r.due_on, 1), else_=0)))
             .where(col(r.received_on) >= first, col(r.received_on) <= last).group_by(r.unit_id))
    return {unit: tuple(int(v or 0) for v in values) for unit, *values in db.exec(query)}


def test_statistics_from_daily_figures_match_the_records_across_imports(api: TestClient, operator) -> None:
    first = [("phu-xuan", "2025-07-01", True, "2025-07-02", "2025-07-01"),
             ("phu-xuan", "2025-07-01", False, "2025-07-02", "2025-07-02"),
             ("kim-long", "2025-07-02", True, "2025-07-03", "2025-07-09")]
    # the same days and units again (added to the existing daily rows), a new day, and an open record
    second = [("phu-xuan", "2025-07-01", True, "2025-07-02", "2025-07-05"),
              ("kim-long", "2025-07-02", False, "2025-07-03", ""),
              ("huong-an", "2025-07-20", True, "2025-07-21", "2025-07-21")]
    for rows in (first, second):
        assert _upload(api, operator, _csv(rows)).status_code == 201
    # a rejected file adds nothing, to the records or to the days
    assert _upload(api, operator, _csv(first) + b"nowhere,x,2025-07-01,online,2025-07-02,\n",
                   "reject_file").json()["status"] == "rejected"
    with Session(api.app.state.engine) as db:
        for window in ((date(2025, 7, 1), date(2025, 7, 31)), (date(2025, 7, 2), date(2025, 7, 2)),
                       (date(2025, 7, 1), date(2025, 7, 1))):
            stats = procedures.unit_stats(db, *window)
            assert {u: (s.received, s.online, s.resolved, s.ahead, s.on_time, s.late) for u, s in stats.items()} \
                == _from_records(db, *window)
        assert procedures.unit_stats(db, date(2025, 7, 1), date(2025, 7, 1))["phu-xuan"].received == 3
        assert len(db.exec(select(ProcedureDay)).all()) == 3  # (day, unit) pairs, not records
        assert procedures.data_range(db) == (date(2025, 7, 1), date(2025, 7, 20))
    city = api.get(f"{TASKS}/procedures/stats", headers=operator).json()["city"]
    assert (city["received"], city["online"], city["late"]) == (6, 4, 2)


def test_the_task_list_is_paged_by_cursor_without_gaps_or_repeats(api: TestClient, department) -> None:
    now = datetime.now(UTC)
    # two tasks share each deadline, so the cursor must order ties by id
    created = {make_task(api.app.state.engine, title=f"Nhiệm vụ {n}", deadline=now + timedelta(days=5 + n // 2))
               for n in range(7)}
    seen: list[dict] = []
    url = f"{TASKS}/tasks?limit=3"
    while url:
        response = api.get(url, headers=department)
        assert response.status_code == 200, response.text
        seen += response.json()
        link = response.headers.get("link")
        url = link[link.index("<") + 1:link.index(">")].removeprefix("http://testserver") if link else ""
    assert [t["id"] for t in seen if t["id"] in created] and {t["id"] for t in seen} >= created
    assert len(seen) == len({t["id"] for t in seen})  # nothing twice
    order = [(t["deadline"], -t["id"]) for t in seen]
    assert order == sorted(order, reverse=True)  # newest deadline first, ties by id
    assert all(t["units"] == 2 and t["by_status"]["in_progress"] == 2 for t in seen if t["id"] in created)
    bad = api.get(f"{TASKS}/tasks?cursor=bm90LWEtY3Vyc29y", headers=department)
    assert bad.status_code == 422 and bad.json()["field"] == "query.cursor"
    assert api.get(f"{TASKS}/tasks?limit=0", headers=department).status_code == 422


def test_counts_by_status_come_from_the_database_as_the_rules_say(api: TestClient, engine) -> None:
    now = datetime.now(UTC)
    task = make_task(engine, units=("phu-xuan", "kim-long", "huong-an"), now=now - timedelta(days=20),
                     deadline=now - timedelta(days=2))
    # phu-xuan completed late, the others overdue
    report = make_report(engine, assignment_id(engine, task, "phu-xuan"), "phu-xuan", percent=100, complete=True,
                         now=now - timedelta(days=1))
    with Session(engine) as db:
        service.review_report(db, principal=official("department_official", "so-tu-phap"), allows=allow_all,
                              report_id=report, accept=True, now=now)
        [entry] = [e for e in service.visible_tasks(db, service.Reach(everything=True), now=now).entries
                   if e["task"].id == task]
        views = service.visible_assignments(db, service.Reach(everything=True), task_id=task, now=now)
        assert entry["counts"] == {s: sum(1 for v in views if v.status is s) for s in service.Status}
        assert entry["counts"][service.Status.overdue] == 2
        assert entry["counts"][service.Status.completed_late] == 1
        assert service.count_assignments(db, service.Reach(everything=True), status=service.Status.overdue,
                                         now=now) == 2


def test_the_overdue_list_is_cut_off_most_overdue_first(api: TestClient, operator, engine) -> None:
    now = datetime.now(UTC)
    for days in (3, 9, 6):
        make_task(engine, units=("phu-xuan",), now=now - timedelta(days=30), deadline=now - timedelta(days=days))
    found = api.get(f"{TASKS}/overdue?limit=2", headers=operator).json()
    assert [item["days_overdue"] for item in found] == [9, 6]
    assert len(api.get(f"{TASKS}/overdue", headers=operator).json()) == 3
    assert api.get(f"{TASKS}/overdue?limit=1000", headers=operator).status_code == 422
