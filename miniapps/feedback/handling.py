"""Handling a report: the officials' actions through its states (accept, assign, resolve, transfer...),
the resident's rating, and the deadline jobs (escalating overdue reports, closing stale resolutions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from miniapps.feedback.models import FeedbackCategory, FeedbackEvent, FeedbackFollower, FeedbackReport, ReportState
from miniapps.feedback.service import (
    HIDDEN_STATES,
    MAX_PHOTOS,
    MINIAPP,
    OPEN_STATES,
    PROCESSED_STATES,
    REOPEN_DAYS,
    FeedbackError,
    Notice,
    access,
    attach_photos,
    audience,
    aware,
    get_category,
    handling_unit_for,
    local_unit,
    official_role_of,
    search_text,
    stage,
    step_notice,
    utcnow,
    visible_report,
)
from plugins import MediaStore, OrgUnit, Principal, ProcessedPhoto, UnitKind, add_working_hours, all_or_nothing

_HANDLER, _ROUTER, _REPORTER = "handler", "router", "reporter"
# action -> (states it may start from, state it leads to, who may take it)
TRANSITIONS: dict[str, tuple[frozenset[ReportState], ReportState, str]] = {
    "accept": (frozenset({ReportState.submitted, ReportState.transferred}), ReportState.accepted, _HANDLER),
    "reject": (frozenset({ReportState.submitted, ReportState.transferred}), ReportState.rejected, _HANDLER),
    "duplicate": (frozenset({ReportState.submitted, ReportState.transferred, ReportState.accepted}),
                  ReportState.duplicate, _HANDLER),
    "assign": (frozenset({ReportState.accepted, ReportState.reopened, ReportState.assigned}), ReportState.assigned,
               _HANDLER),
    "start": (frozenset({ReportState.accepted, ReportState.assigned, ReportState.reopened}), ReportState.in_progress,
              _HANDLER),
    "resolve": (frozenset({ReportState.accepted, ReportState.assigned, ReportState.in_progress, ReportState.reopened}),
                ReportState.resolved, _HANDLER),
    "transfer": (OPEN_STATES, ReportState.transferred, _ROUTER),
    # an operator places a request whose address matched no unit: it then goes to the place's handler
    "place": (frozenset({ReportState.submitted}), ReportState.submitted, _ROUTER),
    "close": (frozenset({ReportState.resolved}), ReportState.closed, _REPORTER),
    "reopen": (frozenset({ReportState.resolved}), ReportState.reopened, _REPORTER),
}


def may_take(level: str, who: str) -> bool:
    """Whether a caller seeing the report at ``level`` may take actions meant for ``who``."""
    if who == _HANDLER:
        return level in ("handler", "operator")
    if who == _ROUTER:
        return level == "operator"
    return level in ("reporter", "operator")  # operators may also close on a resident's behalf


def act(
    session: Session, *, store: MediaStore, principal: Principal, authorizer: Any, report_id: int, action: str,
    note: str | None = None, reason: str | None = None, response: str | None = None, unit_id: str | None = None,
    duplicate_of: int | None = None, assignee_id: int | None = None, photos: Sequence[ProcessedPhoto] = (),
    now: datetime | None = None, notifier: Any = None,
) -> FeedbackReport:
    """Move a report through its states, recording who and when, and tell those concerned, in one transaction."""
    now = now or utcnow()
    if action not in TRANSITIONS:
        raise FeedbackError(422, f"unknown action {action!r}; one of {sorted(TRANSITIONS)}", field="action")
    report, level = visible_report(session, principal=principal, authorizer=authorizer, report_id=report_id)
    sources, target, who = TRANSITIONS[action]
    if not may_take(level, who):
        raise FeedbackError(403, f"you may not {action} this report", field="action")
    if report.state not in sources:
        raise FeedbackError(409, f"a report in state {report.state.value!r} cannot be {action}ed here; "
                                 f"allowed from {sorted(s.value for s in sources)}", field="action")
    if photos and action != "resolve":
        raise FeedbackError(422, "photos can be sent only with a resolution", field="photos")
    if len(photos) > MAX_PHOTOS:
        raise FeedbackError(422, f"at most {MAX_PHOTOS} photos", field="photos")
    before = report.state
    extra_users: list[int] = []
    if action == "reject":
        report.reason = _required(reason, "reason")
    elif action == "duplicate":
        original = session.get(FeedbackReport, duplicate_of) if duplicate_of else None
        # The original must be one this official can see and that is itself live: naming a hidden
        # report would make the resident its follower, and followers may read it.
        if (original is None or original.id == report.id or original.state is ReportState.duplicate
                or original.state in HIDDEN_STATES or access(principal, original, authorizer, session) is None):
            raise FeedbackError(422, "name the original report: an open report you can see, not this one",
                                field="duplicate_of")
        report.duplicate_of_id = original.id
        if report.reporter_id and report.reporter_id != original.reporter_id and session.get(
                FeedbackFollower, (original.id, report.reporter_id)) is None:
            session.add(FeedbackFollower(report_id=original.id, user_id=report.reporter_id))
    elif action == "assign":
        if assignee_id is not None:
            report.assignee_id = _assignable(session, report, assignee_id)
    elif action == "resolve":
        report.response = _required(response or note, "response")
        report.resolved_at = now
    elif action == "place":
        _place(session, report, unit_id, now)
    elif action == "transfer":
        report.handling_unit_id = _transfer_target(session, unit_id, report)
        report.assignee_id = None
        report.due_at = add_working_hours(now, _category_hours(session, report))
    elif action == "reopen":
        resolved_at = aware(report.resolved_at)
        if resolved_at is None or now - resolved_at > timedelta(days=REOPEN_DAYS):
            raise FeedbackError(409, f"a report can be reopened within {REOPEN_DAYS} days of its resolution",
                                field="action")
        report.reason = _required(reason or note, "reason")
        report.due_at = add_working_hours(now, _category_hours(session, report))
        report.escalated_at = None
    if target in PROCESSED_STATES and report.processed_at is None:
        report.processed_at = now
    # Two officials acting at once both read the old state; only the first move away from it wins
    # (the row is locked by the first writer until it commits, then no longer matches).
    moved = session.execute(update(FeedbackReport).where(
        col(FeedbackReport.id) == report.id, col(FeedbackReport.state) == before).values(state=target, updated_at=now))
    if moved.rowcount != 1:
        session.rollback()
        raise FeedbackError(409, "someone changed this report meanwhile; reload it and try again", field="action")
    report.state = target
    report.updated_at = now
    try:
        with all_or_nothing(store) as files:
            attach_photos(session, files, report, photos, kind="resolution", now=now)
            session.add(FeedbackEvent(
                report_id=report.id, at=now, actor_id=principal.user_id, actor_role=_actor_role(level),
                action=action, from_state=before.value, to_state=target.value, unit_id=report.handling_unit_id,
                note=(reason if action in ("reject", "reopen") else response if action == "resolve" else note) or note))
            session.add(report)
            session.flush()
            stage(session, notifier, _action_notices(session, report, action, target, extra_users))
            session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(report)
    return report


def _action_notices(session: Session, report: FeedbackReport, action: str, target: ReportState,
                    extra_users: list[int]) -> list[Notice]:
    """Who is told of an action: the reporter and followers, and the unit a report moves or returns to."""
    notices = [step_notice(report, audience(session, report) + extra_users, target.value)]
    if action == "transfer":
        notices.append(Notice(
            topic="new_reports", title={"vi": f"Phản ánh #{report.id} được chuyển đến đơn vị",
                                        "en": f"Report #{report.id} transferred to your unit"},
            body={"vi": report.description[:160], "en": report.description[:160]},
            url=f"/m/{MINIAPP}/reports/{report.id}",
            roles=[(official_role_of(session, report.handling_unit_id), report.handling_unit_id)]))
    if action == "reopen":
        notices.append(Notice(
            topic="new_reports", title={"vi": f"Phản ánh #{report.id} bị mở lại", "en": f"Report #{report.id} reopened"},
            body={"vi": report.reason or "", "en": report.reason or ""}, url=f"/m/{MINIAPP}/reports/{report.id}",
            roles=[(official_role_of(session, report.handling_unit_id), report.handling_unit_id)]))
    return [n for n in notices if n.users or n.roles]


def _required(text: str | None, name: str) -> str:
    text = (text or "").strip()
    if not text:
        raise FeedbackError(422, f"{name} is required for this action", field=name)
    return text[:4000]


def _category_hours(session: Session, report: FeedbackReport) -> int:
    category = session.get(FeedbackCategory, report.category_id)
    assert category is not None
    return category.urgent_deadline_hours if report.urgent else category.deadline_hours


def _place(session: Session, report: FeedbackReport, unit_id: str | None, now: datetime) -> None:
    """Put an unplaced request at its commune or ward (its centre) and hand it to the place's handler."""
    if not report.needs_placing:
        raise FeedbackError(409, "this report already has its place", field="action")
    unit = local_unit(session, unit_id or "")
    if unit.lat is None or unit.lon is None:
        raise FeedbackError(422, f"{unit.id!r} has no known centre to place the report at", field="unit_id")
    report.unit_id, report.lat, report.lon, report.needs_placing = unit.id, unit.lat, unit.lon, False
    report.handling_unit_id = handling_unit_for(get_category(session, report.category_id), unit.id)
    report.due_at = add_working_hours(now, _category_hours(session, report))
    report.search_text = search_text(report, get_category(session, report.category_id),
                                      [unit, session.get(OrgUnit, report.handling_unit_id)])


def _transfer_target(session: Session, unit_id: str | None, report: FeedbackReport) -> str:
    unit = session.get(OrgUnit, unit_id) if unit_id else None
    if unit is None or unit.kind is UnitKind.city:
        raise FeedbackError(422, "name a department, commune or ward to transfer to", field="unit_id")
    if unit.id == report.handling_unit_id:
        raise FeedbackError(422, "the report is already handled by that unit", field="unit_id")
    return unit.id


def _assignable(session: Session, report: FeedbackReport, assignee_id: int) -> int:
    from plugins import MembershipRow as Membership

    member = session.exec(select(Membership).where(Membership.user_id == assignee_id,
                                                   Membership.unit_id == report.handling_unit_id)).first()
    if member is None:
        raise FeedbackError(422, "the assignee must be an official of the handling unit", field="assignee_id")
    return assignee_id


def _actor_role(level: str) -> str:
    return {"operator": "operator", "handler": "official", "reporter": "resident"}.get(level, level)


def rate(session: Session, *, principal: Principal, authorizer: Any, report_id: int, stars: int,
         comment: str | None = None, now: datetime | None = None, notifier: Any = None) -> FeedbackReport:
    """The reporter rates the handling 1-5 after resolution; a resolved report is closed by it."""
    now = now or utcnow()
    report, level = visible_report(session, principal=principal, authorizer=authorizer, report_id=report_id)
    if level != "reporter":
        raise FeedbackError(403, "only the resident who filed the report rates it", field="report_id")
    if report.state not in (ReportState.resolved, ReportState.closed):
        raise FeedbackError(409, "a report can be rated once it is resolved", field="stars")
    if report.rating is not None:
        raise FeedbackError(409, "this report is rated already", field="stars")
    if not 1 <= stars <= 5:
        raise FeedbackError(422, "stars must be 1 to 5", field="stars")
    before = report.state
    report.rating, report.rating_comment, report.rated_at = stars, (comment or "").strip()[:1000] or None, now
    report.state, report.updated_at = ReportState.closed, now
    session.add(FeedbackEvent(report_id=report.id, at=now, actor_id=principal.user_id, actor_role="resident",
                              action="rated", from_state=before.value, to_state=ReportState.closed.value,
                              unit_id=report.handling_unit_id, note=f"{stars}/5"))
    session.add(report)
    stage(session, notifier, [Notice(
        topic="report_updates", url=f"/m/{MINIAPP}/reports/{report.id}",
        roles=[(official_role_of(session, report.handling_unit_id), report.handling_unit_id)],
        title={"vi": f"Phản ánh #{report.id} được đánh giá {stars}/5", "en": f"Report #{report.id} rated {stars}/5"},
        body={"vi": report.rating_comment or f"{stars}/5 sao", "en": report.rating_comment or f"{stars}/5 stars"})])
    session.commit()
    session.refresh(report)
    return report


# --- escalation -------------------------------------------------------------------------------------------


def escalate_overdue(session: Session, *, now: datetime | None = None, limit: int = 500,
                     notifier: Any = None) -> int:
    """Flag open reports past their deadline once and tell the operators, in one transaction; returns how many."""
    now = now or utcnow()
    late = list(session.exec(select(FeedbackReport).where(
        col(FeedbackReport.state).in_(list(OPEN_STATES)), FeedbackReport.due_at < now,
        col(FeedbackReport.escalated_at).is_(None)).order_by(FeedbackReport.due_at).limit(limit)))
    for report in late:
        report.escalated_at = now
        session.add(report)
        session.add(FeedbackEvent(report_id=report.id, at=now, actor_role="system", action="escalated",
                                  from_state=report.state.value, to_state=report.state.value,
                                  unit_id=report.handling_unit_id, note="overdue"))
    if late:
        # The flag and the operators' notice commit together: if telling them fails, nothing is flagged
        # and the next run tries again (it was once committed first, and a failed send lost the notice).
        ids = ", ".join(f"#{r.id}" for r in late[:20]) + (" …" if len(late) > 20 else "")
        stage(session, notifier, [Notice(
            topic="overdue_reports", roles=[("operator", "hue")], url=f"/m/{MINIAPP}/queue?overdue=true",
            title={"vi": f"{len(late)} phản ánh quá hạn", "en": f"{len(late)} overdue reports"},
            body={"vi": f"Quá hạn xử lý: {ids}", "en": f"Past their deadline: {ids}"}, severity="warning")])
    session.commit()
    return len(late)


def close_stale_resolutions(session: Session, *, now: datetime | None = None) -> int:
    """Close resolved reports the resident left alone for the whole reopening window."""
    now = now or utcnow()
    stale = list(session.exec(select(FeedbackReport).where(
        FeedbackReport.state == ReportState.resolved,
        FeedbackReport.resolved_at < now - timedelta(days=REOPEN_DAYS)).limit(500)))
    for report in stale:
        report.state, report.updated_at = ReportState.closed, now
        session.add(FeedbackEvent(report_id=report.id, at=now, actor_role="system", action="close",
                                  from_state=ReportState.resolved.value, to_state=ReportState.closed.value,
                                  unit_id=report.handling_unit_id, note=f"no reply within {REOPEN_DAYS} days"))
    session.commit()
    return len(stale)
