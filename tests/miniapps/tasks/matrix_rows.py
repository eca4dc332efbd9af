"""The tasks mini-app's rows of the authorisation matrix (merged by tests/core/identity/test_matrix.py).

The world holds a Department of Justice task for Phú Xuân only (so Kim Long's official may not even see
it: 404) and a Department of Home Affairs task for Kim Long (which the Department of Justice's official
may not see: 404). Rows that change things get a fresh object per persona."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from miniapps.tasks.models import ProcedureImport
from tests.matrix import PUBLIC, SIGN_IN, Case, World, only
from tests.miniapps.tasks.conftest import assignment_id, make_report, make_task

T = "/api/miniapps/tasks"
VIEWERS = ("commune_px", "commune_kl", "department", "operator", "admin")
IMPORTERS = ("operator", "admin")
SEES_PX_TASK = ("commune_px", "department", "operator", "admin")


def _made(world: World) -> dict[str, Any]:
    made = world.__dict__.setdefault("tasks_made", {})
    if not made:
        engine = world.api.app.state.engine
        made["px_task"] = make_task(engine, assigner="so-tu-phap", units=("phu-xuan",), title="Kiểm tra hộ tịch")
        made["px_assignment"] = assignment_id(engine, made["px_task"], "phu-xuan")
        made["kl_task"] = make_task(engine, assigner="so-noi-vu", units=("kim-long",), title="Báo cáo cán bộ")
        made["kl_assignment"] = assignment_id(engine, made["kl_task"], "kim-long")
    return made


def _px_task(world: World, who: str) -> str:
    return f"{T}/tasks/{_made(world)['px_task']}"


def _px_assignment(world: World, who: str, prefix: str = T) -> str:
    return f"{prefix}/assignments/{_made(world)['px_assignment']}"


def _fresh_report(key: str, suffix: str, prefix: str = T) -> Any:
    """A new pending report for each persona, on Phú Xuân's or Kim Long's assignment."""
    def url(world: World, who: str) -> str:
        made = _made(world)
        unit = "phu-xuan" if key == "px_assignment" else "kim-long"
        report = make_report(world.api.app.state.engine, made[key], unit)
        return f"{prefix}/reports/{report}/{suffix}"
    return url


def _evidence_url(world: World, who: str) -> str:
    made = _made(world)
    if "evidence" not in made:
        from sqlmodel import Session

        from miniapps.tasks import service
        from tests.miniapps.tasks.conftest import small_jpeg

        engine = world.api.app.state.engine
        report = make_report(engine, made["px_assignment"], "phu-xuan")
        world.api.app.state.media.put(f"tasks/evidence/{report}/matrix.jpg", small_jpeg(), "image/jpeg")
        with Session(engine, expire_on_commit=False) as db:
            index = service.add_evidence(db, db.get(service.Report, report), f"tasks/evidence/{report}/matrix.jpg")
        made["evidence"] = f"{T}/reports/{report}/evidence/{index}"
    return made["evidence"]


def _close_url(world: World, who: str) -> str:
    # a different finished month per persona, so one persona's close never answers another's 409
    from tests.core.identity.conftest import PERSONAS

    return f"{T}/periods/2024-{PERSONAS.index(who) + 1:02d}/close"


def _import_url(world: World, who: str) -> str:
    made = world.__dict__.setdefault("tasks_made_import", {})
    if "id" not in made:
        with world.db() as db:
            record = ProcedureImport(source="api", mode="keep_good", status="imported", created_at=datetime.now(UTC))
            db.add(record)
            db.commit()
            made["id"] = record.id
    return f"{T}/procedures/imports/{made['id']}"


def _task_body(world: World, who: str) -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    return {"title": f"Nhiệm vụ của {who}", "deadline": deadline, "unit_ids": ["phu-xuan"]}


def _task_form(world: World, who: str) -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    return {"title": f"Nhiệm vụ (biểu mẫu) của {who}", "deadline": deadline, "unit_ids": "phu-xuan"}


def _hides_px_task(world: World, who: str, creds: Any, response: Any) -> None:
    """Kim Long's official never sees Phú Xuân's task in the list; its viewers do."""
    if response.status_code != 200:
        return
    ids = {row["id"] for row in response.json()}
    task = _made(world)["px_task"]
    if who == "commune_kl":
        assert task not in ids, "Kim Long's official sees a task assigned only to Phú Xuân"
    else:
        assert task in ids, f"{who} does not see the Phú Xuân task"


def _only_own_assignments(world: World, who: str, creds: Any, response: Any) -> None:
    """A commune official sees only their own unit's assignment of a task."""
    if response.status_code == 200 and who == "commune_px":
        assert {a["unit_id"] for a in response.json()["assignments"]} == {"phu-xuan"}


VIEW = only(*VIEWERS)
VIEW_PAGE = only(*VIEWERS, anonymous=SIGN_IN)
GOOD_RECORD = {"unit_id": "phu-xuan", "procedure": "Đăng ký khai sinh", "received_on": "2025-07-01",
               "online": "online", "due_on": "2025-07-02", "resolved_on": "2025-07-02"}

ROWS: dict[tuple[str, str], list[Case]] = {
    ("GET", f"{T}/tasks"): [Case("list tasks", f"{T}/tasks", VIEW, before=_made, check=_hides_px_task)],
    ("POST", f"{T}/tasks"): [
        Case("assign a task to Phú Xuân", f"{T}/tasks", only("department", "operator", "admin"), json=_task_body),
        Case("a deadline in the past", f"{T}/tasks", only("department", "operator", "admin", department=422,
                                                          operator=422, admin=422),
             json={"title": "Quá hạn", "deadline": "2020-01-01", "unit_ids": ["phu-xuan"]}),
    ],
    ("GET", f"{T}/tasks/{{task_id}}"): [
        Case("Phú Xuân's task", _px_task, only(*SEES_PX_TASK, commune_kl=404), check=_only_own_assignments),
        Case("no such task", f"{T}/tasks/987654", only(*VIEWERS, **dict.fromkeys(VIEWERS, 404))),
    ],
    ("GET", f"{T}/assignments/{{assignment_id}}"): [
        Case("Phú Xuân's assignment", _px_assignment, only(*SEES_PX_TASK, commune_kl=404)),
    ],
    ("POST", f"{T}/assignments/{{assignment_id}}/reports"): [
        # Kim Long's official may report but not see Phú Xuân's task: 404; the department sees it: 403
        Case("report on Phú Xuân's assignment", lambda w, who: _px_assignment(w, who) + "/reports",
             only("commune_px", "admin", commune_kl=404), json={"percent": 20, "note": "Đang làm"}),
    ],
    ("POST", f"{T}/reports/{{report_id}}/accept"): [
        Case("accept Phú Xuân's report", _fresh_report("px_assignment", "accept"), only("department", "operator", "admin")),
        Case("accept Kim Long's report (Home Affairs task)", _fresh_report("kl_assignment", "accept"),
             only("operator", "admin", department=404)),
    ],
    ("POST", f"{T}/reports/{{report_id}}/return"): [
        Case("return Phú Xuân's report", _fresh_report("px_assignment", "return"),
             only("department", "operator", "admin"), json={"reason": "Thiếu danh sách kèm theo"}),
    ],
    ("POST", f"{T}/reports/{{report_id}}/evidence"): [
        # no file: reporters get past the permission check to the 422; object-level checks: test_evidence.py
        Case("evidence without a photo", _fresh_report("px_assignment", "evidence"),
             only("commune_px", "commune_kl", "admin", commune_px=422, commune_kl=422, admin=422)),
    ],
    ("GET", f"{T}/reports/{{report_id}}/evidence/{{index}}"): [
        Case("Phú Xuân's evidence photo", _evidence_url, only(*SEES_PX_TASK, commune_kl=404)),
    ],
    ("GET", f"{T}/overdue"): [Case("overdue list", f"{T}/overdue", VIEW)],
    ("GET", f"{T}/rankings"): [Case("this month's ranking", f"{T}/rankings", VIEW)],
    ("GET", f"{T}/rankings/export"): [Case("ranking as XLSX", f"{T}/rankings/export?format=xlsx", VIEW)],
    ("POST", f"{T}/periods/{{period}}/close"): [Case("close a finished month", _close_url, only("operator", "admin"))],
    ("GET", f"{T}/units/{{unit_id}}/evaluation"): [Case("Phú Xuân's 12 months", f"{T}/units/phu-xuan/evaluation", VIEW)],
    ("GET", f"{T}/procedures/stats"): [Case("procedure figures", f"{T}/procedures/stats", VIEW)],
    ("GET", f"{T}/procedures/stats/export"): [Case("procedure figures as CSV", f"{T}/procedures/stats/export", VIEW)],
    ("POST", f"{T}/procedures/imports"): [
        Case("an upload without a file", f"{T}/procedures/imports",
             only(*IMPORTERS, operator=422, admin=422), data={"mode": "keep_good"}),
    ],
    ("POST", f"{T}/procedures/records"): [
        Case("records through the API", f"{T}/procedures/records", only(*IMPORTERS),
             json={"mode": "keep_good", "records": [GOOD_RECORD]}),
    ],
    ("GET", f"{T}/procedures/imports/{{import_id}}"): [Case("an import's report", _import_url, only(*IMPORTERS))],
    # pages
    ("GET", "/m/tasks/"): [Case("entry page", "/m/tasks/", PUBLIC)],
    ("GET", "/m/tasks/tasks/{task_id}"): [
        Case("Phú Xuân's task page", lambda w, who: f"/m/tasks/tasks/{_made(w)['px_task']}",
             only(*SEES_PX_TASK, commune_kl=404, anonymous=SIGN_IN)),
    ],
    ("GET", "/m/tasks/assignments/{assignment_id}"): [
        Case("Phú Xuân's assignment page", lambda w, who: _px_assignment(w, who, "/m/tasks"),
             only(*SEES_PX_TASK, commune_kl=404, anonymous=SIGN_IN)),
    ],
    ("POST", "/m/tasks/assignments/{assignment_id}/reports"): [
        Case("report form for Phú Xuân", lambda w, who: _px_assignment(w, who, "/m/tasks") + "/reports",
             only("commune_px", "admin", commune_kl=404, anonymous=SIGN_IN), data={"percent": "30", "note": "x"}),
    ],
    ("POST", "/m/tasks/reports/{report_id}/review"): [
        Case("accept from the page", _fresh_report("px_assignment", "review", "/m/tasks"),
             only("department", "operator", "admin", commune_kl=404, anonymous=SIGN_IN), data={"decision": "accept"}),
    ],
    ("GET", "/m/tasks/tasks/new"): [
        Case("assign form", "/m/tasks/tasks/new", only("department", "operator", "admin", anonymous=SIGN_IN)),
    ],
    ("POST", "/m/tasks/tasks/new"): [
        Case("assign from the form", "/m/tasks/tasks/new", only("department", "operator", "admin", anonymous=SIGN_IN),
             data=_task_form),
    ],
    ("GET", "/m/tasks/procedures/import"): [
        Case("import form", "/m/tasks/procedures/import", only(*IMPORTERS, anonymous=SIGN_IN)),
    ],
    ("POST", "/m/tasks/procedures/import"): [
        Case("import form without a file", "/m/tasks/procedures/import",
             only(*IMPORTERS, operator=422, admin=422, anonymous=SIGN_IN), data={"mode": "keep_good"}),
    ],
    ("GET", "/m/tasks/units/{unit_id}"): [Case("Phú Xuân's dashboard", "/m/tasks/units/phu-xuan", VIEW_PAGE)],
    ("GET", "/m/tasks/rankings"): [Case("ranking page", "/m/tasks/rankings", VIEW_PAGE)],
    ("GET", "/m/tasks/procedures"): [Case("procedure dashboard", "/m/tasks/procedures", VIEW_PAGE)],
}
