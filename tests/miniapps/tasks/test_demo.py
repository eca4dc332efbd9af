"""The issue's "done when": Home Affairs assigns to all 40 units, three report, one goes overdue and its
officials are notified, the ranking reflects it, and the procedure figures are Hue's published ones."""

from __future__ import annotations

import anyio
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.identity.models import User
from core.seed import DEMO_PASSWORD, seed_demo
from miniapps.tasks import demo, jobs
from miniapps.tasks.models import ProcedureRecord, Report, Task
from tests.inbox import inbox_of
from tests.miniapps.tasks.conftest import TASKS


def _seed(api: TestClient) -> list[str]:
    tasks = [m for m in api.app.state.miniapps if m.id == "tasks"]
    return list(seed_demo(api.app.state.engine, tasks))


def test_the_demo_scenario(api: TestClient, fast_passwords) -> None:
    lines = _seed(api)
    assert "tasks: procedure records: 17710 added (1 to 14 July 2025)" in lines
    token = api.post("/api/auth/login", json={"username": "noivu.demo", "password": DEMO_PASSWORD}).json()["access_token"]
    noivu = {"Authorization": f"Bearer {token}"}
    mine = {t["title"]: t for t in api.get(f"{TASKS}/tasks", headers=noivu).json()}
    assert set(mine) == {demo.STAFF_REPORT_TASK, demo.REVIEW_TASK}  # Home Affairs' own tasks only
    assert all(t["units"] == 40 and t["assigner_unit_id"] == "so-noi-vu" for t in mine.values())
    review = api.get(f"{TASKS}/tasks/{mine[demo.REVIEW_TASK]['id']}", headers=noivu).json()
    engine = api.app.state.engine
    with Session(engine) as db:
        reporting = {a["unit_id"] for a in review["assignments"]
                     if db.exec(select(Report).where(Report.assignment_id == a["id"])).first()}
    assert reporting == set(demo.REPORTING_UNITS)
    overdue = api.get(f"{TASKS}/overdue", headers=noivu).json()
    assert [o["unit_id"] for o in overdue] == ["kim-long"]

    assert anyio.run(jobs.send_deadline_notices, api.app.state.host) == 1
    with Session(engine) as db:
        kimlong = db.exec(select(User).where(User.username == "kimlong.demo")).one()
        topics = [n.topic for n in inbox_of(db, kimlong.id, miniapp="tasks")]
    assert topics == ["overdue_notices"]

    ranking = api.get(f"{TASKS}/rankings", headers=noivu).json()["rows"]
    scored = [r for r in ranking if r["score"] is not None]
    assert scored[-1]["unit_id"] == "kim-long" and scored[-1]["overdue"] == 1
    stats = api.get(f"{TASKS}/procedures/stats", headers=noivu).json()
    assert (stats["from"], stats["to"], stats["city"]["received"], stats["city"]["online_rate"]) == (
        "2025-07-01", "2025-07-14", 17_710, 75.78)

    unit_page = api.get("/m/tasks/units/kim-long", headers=noivu)
    assert unit_page.status_code == 200
    assert 'data-testid="unit-scores"' in unit_page.text and demo.STAFF_REPORT_TASK in unit_page.text
    assert "338 hồ sơ" not in unit_page.text and "/493" not in unit_page.text  # Kim Long's own figures only
    huong_an = api.get("/m/tasks/units/huong-an", headers=noivu).text
    assert "338 hồ sơ" in huong_an and "309/338 đúng hạn" in huong_an

    # a second run adds nothing
    again = _seed(api)
    assert "tasks: procedure records: already present" in again
    with Session(engine) as db:
        assert len(db.exec(select(Task.id)).all()) == 3
        assert len(db.exec(select(ProcedureRecord.id)).all()) == 17_710
