"""Demo data for ``superapp seed demo``: the Department of Home Affairs' tasks for all 40 units, three
units reporting, one overdue, a closed July 2025 ranking, and the procedure records behind Hue's
published July 2025 figures. Idempotent: a second run adds nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from miniapps.tasks import evaluation, procedures, service
from miniapps.tasks.models import PeriodSnapshot, ProcedureImport, Task
from miniapps.tasks.service import HUE_TIME, IndicatorSpec, IndicatorValue, ReportSpec
from plugins import DEMO_PASSWORD, DEMO_PASSWORD_ENV, Membership, Principal, User, create_official

DEMO_OFFICIALS = (
    ("noivu.demo", "Chuyên viên Sở Nội vụ (demo)", "department_official", "so-noi-vu"),
    ("huongan.demo", "Cán bộ phường Hương An (demo)", "commune_official", "huong-an"),
)
ONLINE_TASK = "Nâng tỷ lệ hồ sơ thủ tục hành chính nộp trực tuyến tháng 7/2025"
STAFF_REPORT_TASK = "Báo cáo số lượng cán bộ, công chức cấp xã được bồi dưỡng chuyển đổi số"
REVIEW_TASK = "Rà soát, sắp xếp đội ngũ cán bộ, công chức cấp xã sau sắp xếp đơn vị hành chính"
OVERDUE_UNIT = "kim-long"  # its official, kimlong.demo, gets the overdue notice
REPORTING_UNITS = ("phu-xuan", "kim-long", "huong-an")


def _allow_all(permission: str, unit_id: str | None) -> bool:
    return True  # the loader acts for the bodies it names; the API checks real callers


def _official(session: Session, username: str, role: str, unit: str) -> Principal:
    user = session.exec(select(User).where(User.username == username)).first()
    return Principal(user_id=user.id if user else None, kind="official", display_name=username,
                     memberships=(Membership(role, unit),))


def _report(session: Session, unit_principal: Principal, reviewer: Principal, assignment_id: int, *,
            percent: int, complete: bool, at: datetime, values: list[IndicatorValue] | None = None,
            note: str = "", accept: bool | None = True, reason: str = "", period: str = "") -> None:
    report = service.submit_report(session, principal=unit_principal, allows=_allow_all, assignment_id=assignment_id,
                                   spec=ReportSpec(percent=percent, complete=complete, note=note, period=period,
                                                   values=values or []), now=at)
    if accept is not None:
        service.review_report(session, principal=reviewer, allows=_allow_all, report_id=report.id or 0,
                              accept=accept, reason=reason, now=at + timedelta(hours=2))


def _unit_principal(unit_id: str) -> Principal:
    return Principal(user_id=None, kind="official", memberships=(Membership("commune_official", unit_id),))


def _assignments(session: Session, task: Task) -> dict[str, int]:
    from miniapps.tasks.models import Assignment

    return {a.unit_id: a.id or 0 for a in session.exec(select(Assignment).where(Assignment.task_id == task.id))}


def load_demo(host) -> Iterator[str]:
    """Load the demo; yields progress lines."""
    password = os.environ.get(DEMO_PASSWORD_ENV, DEMO_PASSWORD)
    now = datetime.now(UTC)
    with host.session() as session:
        created = 0
        for username, name, role, unit in DEMO_OFFICIALS:
            if session.exec(select(User).where(User.username == username)).first() is None:
                create_official(session, username=username, display_name=name, password=password,
                                memberships=[(role, unit)])
                created += 1
        yield f"demo officials: {created} added ({', '.join(u for u, *_ in DEMO_OFFICIALS)})"
        noivu = _official(session, "noivu.demo", "department_official", "so-noi-vu")
        city = Principal(user_id=None, kind="official", memberships=(Membership("operator", "hue"),))

        if session.exec(select(ProcedureImport).where(ProcedureImport.source == "demo")).first() is None:
            units = [u.id for u in service.assignee_units(session)]
            record = procedures.import_rows(session, procedures.july_records(units), source="demo",
                                            mode="reject_file", filename="hue-1-14-july-2025")
            yield f"procedure records: {record.rows_good} added (1 to 14 July 2025)"
        else:
            yield "procedure records: already present"

        if session.exec(select(Task).where(Task.title == ONLINE_TASK)).first() is None:
            yield from _july_task(session, city)
        if session.get(PeriodSnapshot, "2025-07") is None:
            evaluation.close_period(session, period="2025-07", closed_by=None, now=now)
            yield "ranking for 2025-07 closed and stored"

        if session.exec(select(Task).where(Task.title == STAFF_REPORT_TASK)).first() is None:
            yield from _staff_report_task(session, noivu, now)
        if session.exec(select(Task).where(Task.title == REVIEW_TASK)).first() is None:
            yield from _review_task(session, noivu, now)


def _july_task(session: Session, city: Principal) -> Iterator[str]:
    """July 2025: the city's online-submission target, fed by the procedure statistics; every unit done."""
    created = datetime(2025, 6, 25, 2, tzinfo=UTC)
    task = service.create_task(
        session, principal=city, allows=_allow_all, title=ONLINE_TASK, all_units=True, unit_ids=None,
        description="Các phường, xã đẩy mạnh tiếp nhận hồ sơ trực tuyến; chỉ tiêu lấy từ số liệu thủ tục hành chính.",
        deadline=service.end_of_day(datetime(2025, 7, 31).date()), assigner_unit_id="hue",
        indicators=[IndicatorSpec("Tỷ lệ hồ sơ nộp trực tuyến", "%", 50, 80, ">=", "online_rate")], now=created)
    for n, (unit_id, assignment_id) in enumerate(sorted(_assignments(session, task).items())):
        at = datetime(2025, 7, 20, 3, tzinfo=UTC) + timedelta(hours=5 * n)
        if n % 9 == 4:
            at = datetime(2025, 8, 2, 3, tzinfo=UTC)  # a few handed in late
        _report(session, _unit_principal(unit_id), city, assignment_id, percent=100, complete=True, at=at,
                note="Đã hoàn thành.")
    yield f"task '{ONLINE_TASK}': 40 units, all reported"


def _staff_report_task(session: Session, noivu: Principal, now: datetime) -> Iterator[str]:
    """Due a couple of days ago (this month): 39 units reported, Kim Long did not and is overdue."""
    month_start = datetime.now(HUE_TIME).replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    deadline = max(now - timedelta(days=2), min(month_start + timedelta(minutes=1), now - timedelta(minutes=1)))
    created = deadline - timedelta(days=20)
    task = service.create_task(
        session, principal=noivu, allows=_allow_all, title=STAFF_REPORT_TASK, all_units=True, unit_ids=None,
        description="Báo cáo số cán bộ, công chức cấp xã đã được bồi dưỡng kỹ năng chuyển đổi số.",
        deadline=deadline, assigner_unit_id="so-noi-vu",
        indicators=[IndicatorSpec("Cán bộ được bồi dưỡng chuyển đổi số", "người", 0, 20)], now=created)
    [indicator] = service.indicators_of(session, task.id or 0)
    for n, (unit_id, assignment_id) in enumerate(sorted(_assignments(session, task).items())):
        if unit_id == OVERDUE_UNIT:
            continue
        late = n % 7 == 3
        at = deadline + (now - deadline) / 2 if late else created + timedelta(hours=6 * (n + 1))
        _report(session, _unit_principal(unit_id), noivu, assignment_id, percent=100, complete=True, at=at,
                values=[IndicatorValue(indicator.id or 0, float(8 + (n * 7) % 17))], note="Đã gửi danh sách.")
    yield f"task '{STAFF_REPORT_TASK}': 39 of 40 units reported; {OVERDUE_UNIT} overdue"


def _review_task(session: Session, noivu: Principal, now: datetime) -> Iterator[str]:
    """Open, due in ten days: three units report progress (one completed, one awaiting review, one returned)."""
    task = service.create_task(
        session, principal=noivu, allows=_allow_all, title=REVIEW_TASK, all_units=True, unit_ids=None,
        description="Rà soát vị trí việc làm, bố trí cán bộ, công chức phù hợp sau khi sắp xếp đơn vị hành chính.",
        deadline=now + timedelta(days=10), assigner_unit_id="so-noi-vu", now=now - timedelta(days=5))
    ids = _assignments(session, task)
    px, kl, ha = REPORTING_UNITS
    _report(session, _unit_principal(px), noivu, ids[px], percent=100, complete=True, at=now - timedelta(days=2),
            note="Đã rà soát 100% vị trí việc làm.")
    _report(session, _unit_principal(kl), noivu, ids[kl], percent=30, complete=False, at=now - timedelta(days=3),
            note="Đang rà soát.", accept=False, reason="Thiếu danh sách vị trí việc làm kèm theo.")
    _report(session, _unit_principal(ha), noivu, ids[ha], percent=60, complete=False, at=now - timedelta(days=1),
            note="Đã rà soát 60% vị trí việc làm.", accept=None)
    yield f"task '{REVIEW_TASK}': 40 units, three reported progress"
