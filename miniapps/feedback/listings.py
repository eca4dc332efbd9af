"""Reading reports: the officials' queue, a resident's own reports, the public map, search, and one
report as each caller may see it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, or_
from sqlmodel import Session, col, select

from miniapps.feedback.models import (
    FeedbackCategory,
    FeedbackEvent,
    FeedbackFollower,
    FeedbackPhoto,
    FeedbackReport,
    ReportState,
)
from miniapps.feedback.service import MINIAPP, OPEN_STATES, REOPEN_DAYS, access, aware, utcnow
from plugins import OrgUnit, Principal, User

COUNT_CAP = 10_000


# --- lists -----------------------------------------------------------------------------------------------


def is_overdue(report: Any, now: datetime) -> bool:
    """Open past its deadline."""
    return report.state in OPEN_STATES and aware(report.due_at) < now  # type: ignore[operator]


QUEUE_COLUMNS = (FeedbackReport.id, FeedbackReport.category_id, FeedbackReport.state, FeedbackReport.urgent,
                 FeedbackReport.unit_id, FeedbackReport.handling_unit_id, FeedbackReport.description,
                 FeedbackReport.created_at, FeedbackReport.due_at, FeedbackReport.needs_placing)


def queue(session: Session, *, units: set[str] | None, unit_id: str | None = None, state: str | None = None,
          category_id: str | None = None, overdue: bool | None = None, urgent: bool | None = None,
          page: int = 1, per_page: int = 50, before: int | None = None,
          now: datetime | None = None, needs_placing: bool | None = None) -> tuple[list[Any], int]:
    """A queue page for the units the caller handles (None: every unit), newest first, and the total.

    ``before`` pages by key (reports with a smaller id: constant cost however deep); ``page`` by offset.
    Rows carry only the queue's columns (``QUEUE_COLUMNS``), not whole reports.
    """
    now = now or utcnow()
    where: list[Any] = []
    if units is not None:
        where.append(col(FeedbackReport.handling_unit_id).in_(sorted(units)))
    if unit_id:
        where.append(FeedbackReport.handling_unit_id == unit_id)
    if state:
        where.append(FeedbackReport.state == ReportState(state))
    if category_id:
        where.append(FeedbackReport.category_id == category_id)
    if urgent is not None:
        where.append(FeedbackReport.urgent == urgent)
    if needs_placing is not None:
        where.append(FeedbackReport.needs_placing == needs_placing)
    if overdue is not None:
        open_state = state is None or ReportState(state) in OPEN_STATES
        if overdue:
            where.append(FeedbackReport.due_at < now)
            if state is None:
                where.append(col(FeedbackReport.state).in_(list(OPEN_STATES)))
            elif not open_state:
                where.append(false())
        elif open_state:
            # Written as a range on due_at (not NOT(...)) so the covering index answers it.
            where.append(FeedbackReport.due_at >= now if state else
                         or_(col(FeedbackReport.state).not_in(list(OPEN_STATES)), FeedbackReport.due_at >= now))
    # A queue of 100,000 is not read to the end: counting stops at COUNT_CAP (the page says "10000+").
    capped = select(FeedbackReport.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = session.exec(select(func.count()).select_from(capped)).one()
    listing = select(*QUEUE_COLUMNS).where(*where)
    if before is not None:
        listing = listing.where(col(FeedbackReport.id) < before)
    else:
        listing = listing.offset((page - 1) * per_page)
    rows = session.exec(listing.order_by(col(FeedbackReport.id).desc()).limit(per_page))
    return list(rows), int(total)


def my_reports(session: Session, *, user_id: int) -> list[FeedbackReport]:
    """The reports a resident filed or follows, newest first."""
    followed = select(FeedbackFollower.report_id).where(FeedbackFollower.user_id == user_id)
    return list(session.exec(select(FeedbackReport).where(or_(FeedbackReport.reporter_id == user_id,
                                                              col(FeedbackReport.id).in_(followed)))
                             .order_by(col(FeedbackReport.id).desc()).limit(200)))


MAP_COLUMNS = (FeedbackReport.id, FeedbackReport.lat, FeedbackReport.lon, FeedbackReport.category_id,
               FeedbackReport.state, FeedbackReport.urgent, FeedbackReport.description, FeedbackReport.created_at,
               FeedbackReport.due_at)


def public_reports(session: Session, *, bbox: tuple[float, float, float, float] | None = None,
                   category_id: str | None = None, limit: int = 1000) -> list[Any]:
    """Reports the public may see on the map (not rejected, not duplicates), newest first, at most ``limit``.

    Rows carry only the map's columns (``MAP_COLUMNS``).
    """
    where: list[Any] = [col(FeedbackReport.state).not_in([ReportState.rejected, ReportState.duplicate]),
                        FeedbackReport.needs_placing == false()]  # its point is the city's centre, not its place
    if bbox is not None:
        west, south, east, north = bbox
        where += [FeedbackReport.lon.between(west, east), FeedbackReport.lat.between(south, north)]
    if category_id:
        where.append(FeedbackReport.category_id == category_id)
    return list(session.exec(select(*MAP_COLUMNS).where(*where).order_by(col(FeedbackReport.id).desc())
                             .limit(limit)))


def count_public(session: Session) -> int:
    """How many reports the public map shows."""
    return int(session.exec(select(func.count()).select_from(FeedbackReport).where(
        col(FeedbackReport.state).not_in([ReportState.rejected, ReportState.duplicate]),
        FeedbackReport.needs_placing == false())).one())


def search_reports(session: Session, *, folded: str, principal: Principal, authorizer: Any,
                   limit: int = 10) -> list[FeedbackReport]:
    """Reports whose text, place or category matches ``folded`` that the caller may see."""
    rows = session.exec(select(FeedbackReport).where(col(FeedbackReport.search_text).contains(folded, autoescape=True))
                        .order_by(col(FeedbackReport.id).desc()).limit(limit * 3))
    return [r for r in rows if access(principal, r, authorizer) is not None][:limit]


def photos_of(session: Session, report_id: int) -> list[FeedbackPhoto]:
    """A report's photos, oldest first."""
    return list(session.exec(select(FeedbackPhoto).where(FeedbackPhoto.report_id == report_id)
                             .order_by(FeedbackPhoto.id)))


def timeline(session: Session, report_id: int) -> list[FeedbackEvent]:
    """A report's timeline, oldest first."""
    return list(session.exec(select(FeedbackEvent).where(FeedbackEvent.report_id == report_id)
                             .order_by(FeedbackEvent.at, FeedbackEvent.id)))


# --- views ---------------------------------------------------------------------------------------------


def _unit_view(unit: OrgUnit | None) -> dict[str, Any] | None:
    return None if unit is None else {"id": unit.id, "name": {"vi": unit.name_vi, "en": unit.name_en}}


def view(session: Session, report: FeedbackReport, level: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The report as ``level`` may see it: the reporter's identity only for operators, never for the public."""
    now = now or utcnow()
    category = session.get(FeedbackCategory, report.category_id)
    photos = photos_of(session, report.id or 0)
    names = {}
    events = timeline(session, report.id or 0)
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    if actor_ids and level != "public":
        names = {u.id: u.display_name for u in session.exec(select(User).where(col(User.id).in_(actor_ids)))}
    body: dict[str, Any] = {
        "id": report.id, "category": {"id": category.id, "name": {"vi": category.name_vi, "en": category.name_en}}
        if category else None,
        "description": report.description, "address": report.address, "lat": report.lat, "lon": report.lon,
        "unit": _unit_view(session.get(OrgUnit, report.unit_id)),
        "handling_unit": _unit_view(session.get(OrgUnit, report.handling_unit_id)),
        "state": report.state.value, "status": "open" if report.state in OPEN_STATES else "closed",
        "urgent": report.urgent, "created_at": aware(report.created_at), "updated_at": aware(report.updated_at),
        "due_at": aware(report.due_at), "overdue": is_overdue(report, now), "response": report.response,
        "duplicate_of": report.duplicate_of_id, "rating": report.rating,
        "photos": [{"id": p.public_id, "kind": p.kind, "width": p.width, "height": p.height,
                    "url": f"/api/miniapps/{MINIAPP}/photos/{p.public_id}",
                    "thumbnail_url": f"/api/miniapps/{MINIAPP}/photos/{p.public_id}?size=thumb"} for p in photos],
        "timeline": [{
            "at": aware(e.at), "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
            "actor_role": e.actor_role, "note": e.note if level != "public" or e.action == "resolve" else None,
            # A resident's own actions never name them to the handling unit.
            "actor": names.get(e.actor_id) if e.actor_role not in ("resident", "open311") or level == "operator"
            else None,
        } for e in events if level != "public" or e.action != "followed"],
    }
    if level != "public":
        body.update(reason=report.reason, rating_comment=report.rating_comment)
    if level in ("handler", "official", "operator"):
        body.update(assignee_id=report.assignee_id, escalated_at=aware(report.escalated_at))
    if level == "reporter":
        resolved_at = aware(report.resolved_at)
        body.update(may_rate=report.state in (ReportState.resolved, ReportState.closed) and report.rating is None,
                    may_reopen=report.state is ReportState.resolved and resolved_at is not None
                    and now - resolved_at <= timedelta(days=REOPEN_DAYS))
    if level == "operator":
        reporter = session.get(User, report.reporter_id) if report.reporter_id else None
        body.update(reporter=None if reporter is None else {
            "id": reporter.id, "display_name": reporter.display_name, "phone": reporter.phone},
            reporter_contact=report.reporter_contact, source=report.source)
    body["access"] = level
    return body
