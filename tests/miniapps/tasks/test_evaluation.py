"""Evaluation and rankings, closed periods, the deadline-notice job and the search provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.text import fold
from miniapps.tasks import evaluation, exports, jobs
from miniapps.tasks.models import Notice
from miniapps.tasks.search import search_tasks
from plugins.search import SearchQuery
from tests.inbox import inbox_of
from tests.miniapps.tasks.conftest import (
    TASKS,
    assignment_id,
    make_report,
    make_task,
    official,
)


def _complete(api: TestClient, engine, task: int, unit: str, at: datetime, operator, values=None) -> None:
    report = make_report(engine, assignment_id(engine, task, unit), unit, percent=100, complete=True, now=at,
                         values=values)
    assert api.post(f"{TASKS}/reports/{report}/accept", headers=operator).status_code == 200


def test_ranking_reflects_on_time_work_and_indicators(api: TestClient, engine, operator) -> None:
    from miniapps.tasks.service import IndicatorSpec, IndicatorValue, indicators_of

    start = datetime(2025, 3, 1, 2, tzinfo=UTC)
    task = make_task(engine, units=("phu-xuan", "kim-long", "huong-an"), now=start,
                     deadline=datetime(2025, 3, 20, 10, tzinfo=UTC),
                     indicators=[IndicatorSpec("Hồ sơ số hoá", "%", 0, 100)])
    with Session(engine) as db:
        [indicator] = indicators_of(db, task)
    _complete(api, engine, task, "phu-xuan", datetime(2025, 3, 10, tzinfo=UTC), operator,
              [IndicatorValue(indicator.id, 90.0)])
    _complete(api, engine, task, "kim-long", datetime(2025, 3, 25, tzinfo=UTC), operator,
              [IndicatorValue(indicator.id, 100.0)])
    ranking = api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-03"}).json()
    rows = {r["unit_id"]: r for r in ranking["rows"]}
    assert len(ranking["rows"]) == 40 and ranking["closed"] is False
    assert (rows["phu-xuan"]["rank"], rows["phu-xuan"]["score"]) == (1, 97.0)  # 0.7 * 100 + 0.3 * 90
    assert rows["kim-long"]["score"] == 30.0 and rows["kim-long"]["on_time"] == 0
    assert rows["huong-an"]["overdue"] == 1 and rows["huong-an"]["score"] == 0.0
    assert rows["huong-an"]["rank"] == 3 and rows["phu-vang"]["rank"] is None  # nothing due there
    assert [r["unit_id"] for r in ranking["rows"][:3]] == ["phu-xuan", "kim-long", "huong-an"]
    export = api.get(f"{TASKS}/rankings/export", headers=operator, params={"period": "2025-03", "format": "csv"})
    assert export.text.splitlines()[1].startswith("1,phu-xuan,")
    month = {"period": "2025-03", "format": "csv"}
    vi = api.get(f"{TASKS}/rankings/export", headers=operator, params={**month, "lang": "vi"}).text.splitlines()
    assert vi[0].lstrip("\ufeff").startswith("Hạng,Mã đơn vị,Đơn vị,Điểm,Tỷ lệ đúng hạn")
    en = api.get(f"{TASKS}/rankings/export", headers={**operator, "Accept-Language": "en"}, params=month)
    assert en.text.splitlines()[0].lstrip("\ufeff").startswith("Rank,Unit ID,Unit,Score,On-time rate")
    keys = api.get(f"{TASKS}/rankings/export", headers=operator, params={**month, "lang": "vi", "headers": "keys"})
    assert keys.text.splitlines()[0].lstrip("\ufeff") == ",".join(exports.RANKING_HEADER)


def test_a_closed_period_never_changes(api: TestClient, engine, operator, commune_px) -> None:
    start = datetime(2025, 4, 1, 2, tzinfo=UTC)
    task = make_task(engine, units=("phu-xuan", "kim-long"), now=start, deadline=datetime(2025, 4, 20, tzinfo=UTC))
    _complete(api, engine, task, "phu-xuan", datetime(2025, 4, 5, tzinfo=UTC), operator)
    assert api.post(f"{TASKS}/periods/2025-04/close", headers=commune_px).status_code == 403
    closed = api.post(f"{TASKS}/periods/2025-04/close", headers=operator)
    assert closed.status_code == 201
    before = api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-04"}).json()
    # Kim Long's late completion arrives after the close: the live figures change, the stored ranking does not
    _complete(api, engine, task, "kim-long", datetime(2025, 4, 19, tzinfo=UTC), operator)
    after = api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-04"}).json()
    assert after == before and after["closed"] is True
    with Session(engine) as db:
        live = {s.unit_id: s for s in evaluation.evaluate(db, ["2025-04"])["2025-04"]}
    assert live["kim-long"].on_time == 1
    assert api.post(f"{TASKS}/periods/2025-04/close", headers=operator).status_code == 409
    this_month = datetime.now(UTC).strftime("%Y-%m")
    assert api.post(f"{TASKS}/periods/{this_month}/close", headers=operator).status_code == 422
    assert api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-13"}).status_code == 422


def test_reminders_and_overdue_notices_are_sent_once(api: TestClient, engine, make_persona) -> None:
    px_official, kl_official = make_persona("commune_px"), make_persona("commune_kl")
    now = datetime.now(UTC)
    soon = make_task(engine, units=("phu-xuan",), title="Sắp đến hạn", deadline=now + timedelta(days=2))
    late = make_task(engine, units=("kim-long",), title="Đã quá hạn", now=now - timedelta(days=10),
                     deadline=now - timedelta(days=1))
    far = make_task(engine, units=("kim-long",), title="Còn lâu", deadline=now + timedelta(days=30))
    host = api.app.state.host
    assert anyio.run(jobs.send_deadline_notices, host) == 2
    assert anyio.run(jobs.send_deadline_notices, host) == 0  # never twice for the same thing
    with Session(engine) as db:
        sent = {(n.kind, n.assignment_id) for n in db.exec(select(Notice))}
        assert sent == {("reminder", assignment_id(engine, soon, "phu-xuan")),
                        ("overdue", assignment_id(engine, late, "kim-long"))}
        inbox = {(user_id, n.topic, n.title_vi) for user_id in (px_official.user_id, kl_official.user_id)
                 for n in inbox_of(db, user_id, miniapp="tasks")}
    assert inbox == {(px_official.user_id, "deadline_reminders", "Sắp đến hạn: Sắp đến hạn"),
                     (kl_official.user_id, "overdue_notices", "Quá hạn: Đã quá hạn")}
    assert far  # far from its deadline: nothing sent


def test_the_job_is_registered_hourly(api: TestClient) -> None:
    [miniapp] = [m for m in api.app.state.miniapps if m.id == "tasks"]
    assert [(j.id, j.every) for j in miniapp.jobs] == [("tasks.deadline_notices", timedelta(hours=1))]


def _search(api: TestClient, text: str, principal) -> list:
    query = SearchQuery(text=text, folded=fold(text), locale="vi", principal=principal, host=api.app.state.host)
    return search_tasks(query)


def test_search_by_text_unit_and_status_within_reach(api: TestClient, engine) -> None:
    now = datetime.now(UTC)
    make_task(engine, units=("phu-xuan", "kim-long"), title="Số hoá sổ hộ tịch", description="Đợt một")
    make_task(engine, units=("kim-long",), title="Đã quá hạn báo cáo", now=now - timedelta(days=9),
              deadline=now - timedelta(days=2), assigner="so-noi-vu", description="Tổng hợp số liệu")
    operator = official("operator", "hue", 1)
    assert [r.title for r in _search(api, "so hoa ho tich", operator)] == ["Số hoá sổ hộ tịch"]
    by_unit = _search(api, "hộ tịch Kim Long", operator)
    assert [(r.title, r.snippet) for r in by_unit] == [("Số hoá sổ hộ tịch", "Phường Kim Long: Đang thực hiện trong hạn")]
    assert [r.title for r in _search(api, "quá hạn", operator)] == ["Đã quá hạn báo cáo"]
    assert _search(api, "ho tich", official("commune_official", "huong-an", 1)) == []  # not assigned to Hương An
    assert _search(api, "bao cao", official("department_official", "so-tu-phap", 1)) == []  # Home Affairs' task
    assert [r.title for r in _search(api, "bao cao", official("department_official", "so-noi-vu", 1))] == ["Đã quá hạn báo cáo"]
    assert _search(api, "ho tich", None) == []
