"""Field reports: filing, routing, handling, rating and who may see or do what. No HTTP here."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import false, func, or_, update
from sqlmodel import Session, col, select

from miniapps.feedback.models import (
    FeedbackCategory,
    FeedbackEvent,
    FeedbackFollower,
    FeedbackPhoto,
    FeedbackReport,
    ReportState,
)
from plugins import (
    CITY_ID,
    DomainError,
    FileBatch,
    MediaStore,
    OrgUnit,
    Principal,
    ProcessedPhoto,
    UnitKind,
    User,
    add_working_hours,
    all_or_nothing,
    fold,
    places,
)

MINIAPP = "feedback"
HANDLE = "feedback.reports.handle"
ROUTE = "feedback.reports.route"
MAX_PHOTOS = 5
DUPLICATE_RADIUS_M = 250.0
REOPEN_DAYS = 7
COUNT_CAP = 10_000
OPEN_STATES = frozenset({ReportState.submitted, ReportState.accepted, ReportState.assigned, ReportState.in_progress,
                         ReportState.transferred, ReportState.reopened})
# Reached by handling: counts as processed for the dashboard and stops the deadline clock.
PROCESSED_STATES = frozenset({ReportState.resolved, ReportState.closed, ReportState.rejected, ReportState.duplicate})
HIDDEN_STATES = frozenset({ReportState.rejected})  # not shown to the public (may be abusive or spam)

STATE_NAMES: dict[str, dict[str, str]] = {
    "submitted": {"vi": "Đã gửi", "en": "Submitted"},
    "accepted": {"vi": "Đã tiếp nhận", "en": "Accepted"},
    "rejected": {"vi": "Từ chối", "en": "Rejected"},
    "assigned": {"vi": "Đã phân công", "en": "Assigned"},
    "in_progress": {"vi": "Đang xử lý", "en": "In progress"},
    "resolved": {"vi": "Đã xử lý xong", "en": "Resolved"},
    "closed": {"vi": "Đã đóng", "en": "Closed"},
    "duplicate": {"vi": "Trùng lặp", "en": "Duplicate"},
    "transferred": {"vi": "Đã chuyển đơn vị", "en": "Transferred"},
    "reopened": {"vi": "Mở lại", "en": "Reopened"},
}

# The default categories (also inserted by the migration): id, vi, en, department (None: the local unit),
# working hours to resolve, hours when urgent.
DEFAULT_CATEGORIES: tuple[tuple[str, str, str, str | None, int, int], ...] = (
    ("roads", "Hư hỏng đường sá, vỉa hè", "Damaged roads and pavements", "so-xay-dung", 72, 24),
    ("lighting", "Đèn chiếu sáng công cộng", "Street lighting", "so-xay-dung", 72, 24),
    ("trash", "Rác thải, vệ sinh môi trường", "Rubbish and sanitation", "so-nnmt", 48, 12),
    ("pollution", "Ô nhiễm môi trường", "Pollution", "so-nnmt", 72, 24),
    ("flooding", "Ngập úng cục bộ", "Local flooding", None, 48, 6),
    ("public-order", "Trật tự đô thị, lấn chiếm lòng đường", "Street order and encroachment", None, 72, 24),
    ("trees", "Cây xanh gãy đổ", "Fallen or dangerous trees", None, 48, 6),
    ("other", "Vấn đề khác", "Something else", None, 120, 24),
)


class FeedbackError(DomainError):
    """A refused request (the host answers it); its own name so pages and Open311 can catch the domain's refusals."""


@dataclass
class Notice:
    """A notification written in the same transaction as the change it tells of (see ``stage``)."""

    topic: str
    title: dict[str, str]
    body: dict[str, str]
    url: str
    users: list[int] = field(default_factory=list)
    roles: list[tuple[str, str]] = field(default_factory=list)
    severity: str = "info"


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` with UTC attached when the database gave it back naive (SQLite)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# --- categories --------------------------------------------------------------------------------------


def load_categories(session: Session) -> int:
    """Insert the default categories that are missing; returns how many were added. Idempotent."""
    existing = set(session.exec(select(FeedbackCategory.id)))
    added = 0
    for position, (cid, vi, en, department, hours, urgent_hours) in enumerate(DEFAULT_CATEGORIES):
        if cid not in existing:
            session.add(FeedbackCategory(id=cid, name_vi=vi, name_en=en, department_id=department,
                                         deadline_hours=hours, urgent_deadline_hours=urgent_hours,
                                         position=position * 10))
            added += 1
    session.commit()
    return added


def list_categories(session: Session) -> list[FeedbackCategory]:
    """Active categories in display order."""
    return list(session.exec(select(FeedbackCategory).where(FeedbackCategory.active)
                             .order_by(FeedbackCategory.position, FeedbackCategory.id)))


def all_categories(session: Session) -> list[FeedbackCategory]:
    """Every category, retired ones too, in display order (the admins' table; at most a few dozen rows)."""
    return list(session.exec(select(FeedbackCategory).order_by(FeedbackCategory.position, FeedbackCategory.id)))


CATEGORY_ID = re.compile(r"^[a-z][a-z0-9-]{1,39}$")


def save_category(session: Session, *, category_id: str, name_vi: str, name_en: str, department_id: str | None,
                  deadline_hours: int, urgent_deadline_hours: int, position: int, active: bool) -> FeedbackCategory:
    """Create or change a category and its routing (admins): the department that handles it, or the local
    unit when ``department_id`` is empty. Reports already filed keep their handler and deadline."""
    if not CATEGORY_ID.match(category_id or ""):
        raise FeedbackError(422, "a category id is 2-40 lower-case letters, digits or '-'", field="id")
    for field_name, value in (("name_vi", name_vi), ("name_en", name_en)):
        if not value.strip() or len(value.strip()) > 120:
            raise FeedbackError(422, f"{field_name} must be 1 to 120 characters", field=field_name)
    if department_id:
        unit = session.get(OrgUnit, department_id)
        if unit is None or unit.kind is not UnitKind.department:
            raise FeedbackError(422, f"{department_id!r} is not a city department", field="department_id")
    for field_name, hours in (("deadline_hours", deadline_hours), ("urgent_deadline_hours", urgent_deadline_hours)):
        if not 1 <= hours <= 2000:
            raise FeedbackError(422, f"{field_name} must be between 1 and 2000 working hours", field=field_name)
    if not 0 <= position <= 10_000:
        raise FeedbackError(422, "position must be between 0 and 10000", field="position")
    category = session.get(FeedbackCategory, category_id) or FeedbackCategory(id=category_id, name_vi="", name_en="")
    category.name_vi, category.name_en = name_vi.strip(), name_en.strip()
    category.department_id = department_id or None
    category.deadline_hours, category.urgent_deadline_hours = deadline_hours, urgent_deadline_hours
    category.position, category.active = position, active
    session.add(category)
    session.commit()
    return category


def get_category(session: Session, category_id: str, *, field: str = "category_id") -> FeedbackCategory:
    """An active category, or a 422 naming ``field``."""
    category = session.get(FeedbackCategory, category_id)
    if category is None or not category.active:
        raise FeedbackError(422, f"unknown category {category_id!r}", field=field)
    return category


# --- places and routing ---------------------------------------------------------------------------


def locate(session: Session, *, lat: float, lon: float, lat_field: str = "lat") -> OrgUnit:
    """The commune or ward for a point in Hue; 422 naming ``lat_field`` when the point is outside Hue."""
    if not places.in_hue(lat, lon):
        raise FeedbackError(422, f"the point ({lat}, {lon}) is outside Hue City", field=lat_field)
    placement = places.unit_at(session, lat, lon)
    if placement is None:
        raise FeedbackError(503, "Hue's units are not loaded; run superapp db upgrade", field=lat_field)
    return placement.unit


def local_unit(session: Session, unit_id: str, *, field: str = "unit_id") -> OrgUnit:
    """A commune or ward by id (the resident's correction of the suggested unit), or a 422."""
    unit = session.get(OrgUnit, unit_id)
    if unit is None or unit.kind not in (UnitKind.ward, UnitKind.commune):
        raise FeedbackError(422, f"{unit_id!r} is not a commune or ward of Hue", field=field)
    return unit


def handling_unit_for(category: FeedbackCategory, unit_id: str) -> str:
    """Category plus place decide the handler: the category's department, or the local unit."""
    return category.department_id or unit_id


def official_role_of(session: Session, unit_id: str) -> str:
    """The role that handles reports in ``unit_id``: department or commune officials."""
    unit = session.get(OrgUnit, unit_id)
    return "department_official" if unit is not None and unit.kind is UnitKind.department else "commune_official"


def possible_duplicates(session: Session, *, category_id: str, lat: float, lon: float,
                        limit: int = 5) -> list[FeedbackReport]:
    """Up to ``limit`` open reports of the category within 250 m, nearest first."""
    dlat, dlon = places.degree_box(lat, DUPLICATE_RADIUS_M)
    nearby = session.exec(select(FeedbackReport).where(
        FeedbackReport.category_id == category_id, col(FeedbackReport.state).in_(list(OPEN_STATES)),
        FeedbackReport.lat.between(lat - dlat, lat + dlat), FeedbackReport.lon.between(lon - dlon, lon + dlon),
        FeedbackReport.needs_placing == false(),
    ).limit(200))
    within = [(places.distance_m(lat, lon, r.lat, r.lon), r) for r in nearby]
    within = [pair for pair in within if pair[0] <= DUPLICATE_RADIUS_M]
    return [r for _d, r in sorted(within, key=lambda pair: (pair[0], pair[1].id))][:limit]


# --- filing -------------------------------------------------------------------------------------------


def _search_text(report: FeedbackReport, category: FeedbackCategory, units: Iterable[OrgUnit | None]) -> str:
    parts = [report.description, report.address or "", category.name_vi, category.name_en,
             *(f"{u.name_vi} {u.name_en}" for u in units if u is not None)]
    return fold(" ".join(parts))[:5000]


def file_report(
    session: Session, *, store: MediaStore, reporter_id: int | None, category_id: str, description: str,
    lat: float, lon: float, unit_id: str | None = None, address: str | None = None, urgent: bool = False,
    photos: Sequence[ProcessedPhoto] = (), source: str = "app", contact: str | None = None,
    now: datetime | None = None, notifier: Any = None, media_url: str | None = None,
    description_required: bool = True, unplaced: bool = False,
) -> FeedbackReport:
    """File a report with its photos and its notices in one transaction: all are stored or nothing is.

    ``description_required=False`` for Open311, whose description is optional; ``media_url`` is an Open311
    client's link to its own photo, kept as posted. ``unplaced``: an Open311 request whose address matched
    no commune or ward; the city's operators hold it (at the city's centre, ``lat``/``lon``) until one
    places it (the ``place`` action).
    """
    now = now or utcnow()
    description = description.strip()
    if not description and description_required:
        raise FeedbackError(422, "describe the problem", field="description")
    if len(photos) > MAX_PHOTOS:
        raise FeedbackError(422, f"at most {MAX_PHOTOS} photos", field="photos")
    category = get_category(session, category_id)
    if unplaced:
        unit = session.get(OrgUnit, CITY_ID)
        handler = CITY_ID  # the operators place it first; the category's handler follows from the place
    else:
        suggested = locate(session, lat=lat, lon=lon)
        unit = local_unit(session, unit_id) if unit_id and unit_id != suggested.id else suggested
        handler = handling_unit_for(category, unit.id)
    hours = category.urgent_deadline_hours if urgent else category.deadline_hours
    report = FeedbackReport(
        token=secrets.token_hex(16), category_id=category.id, description=description[:4000],
        address=(address or "").strip()[:300] or None, lat=lat, lon=lon, unit_id=unit.id, handling_unit_id=handler,
        urgent=urgent, reporter_id=reporter_id, reporter_contact=contact, source=source, created_at=now,
        media_url=media_url, needs_placing=unplaced,
        updated_at=now, due_at=add_working_hours(now, hours),
    )
    report.search_text = _search_text(report, category, [unit, session.get(OrgUnit, handler)])
    session.add(report)
    session.flush()
    try:
        with all_or_nothing(store) as files:
            _attach_photos(session, files, report, photos, kind="report", now=now)
            session.add(FeedbackEvent(report_id=report.id, at=now, actor_id=reporter_id,
                                      actor_role="open311" if source.startswith("open311") else "resident",
                                      action="submitted", to_state=ReportState.submitted, unit_id=handler,
                                      note="urgent" if urgent else None))
            role = "operator" if unplaced else official_role_of(session, handler)
            notices = [Notice(
                topic="urgent_reports" if urgent else "new_reports", severity="critical" if urgent else "info",
                title={"vi": f"{'KHẨN: ' if urgent else ''}Phản ánh mới #{report.id}",
                       "en": f"{'URGENT: ' if urgent else ''}New report #{report.id}"},
                body={"vi": f"{category.name_vi}: {description[:160]}", "en": f"{category.name_en}: {description[:160]}"},
                url=f"/m/{MINIAPP}/reports/{report.id}", roles=[(role, handler)],
            )]
            if reporter_id is not None:
                notices.append(_step_notice(report, [reporter_id], "submitted"))
            stage(session, notifier, notices)
            session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(report)
    return report


def _attach_photos(session: Session, files: FileBatch, report: FeedbackReport, photos: Sequence[ProcessedPhoto],
                   *, kind: str, now: datetime) -> None:
    """Store each photo's display copy and thumbnail through ``files`` and record it."""
    for photo in photos:
        key = f"{MINIAPP}/{report.id}/{secrets.token_hex(8)}.jpg"
        for blob_key, blob in ((key, photo.display), (thumbnail_key(key), photo.thumbnail)):
            try:
                files.put(blob_key, blob, "image/jpeg")
            except OSError:
                raise FeedbackError(503, "the photos could not be stored; nothing was saved, try again",
                                    field="photos") from None
        session.add(FeedbackPhoto(report_id=report.id, kind=kind, key=key, width=photo.width, height=photo.height,
                                  sha256=photo.sha256, created_at=now))


def thumbnail_key(key: str) -> str:
    """The thumbnail's key for a display copy's key."""
    return key.removesuffix(".jpg") + "-thumb.jpg"


def follow(session: Session, *, principal: Principal, report: FeedbackReport) -> bool:
    """Follow a report (to be told of its progress) instead of filing a duplicate; False if already."""
    if report.reporter_id == principal.user_id:
        raise FeedbackError(409, "you filed this report; you are told of its progress already", field="report_id")
    if session.get(FeedbackFollower, (report.id, principal.user_id)) is not None:
        return False
    session.add(FeedbackFollower(report_id=report.id, user_id=principal.user_id))
    session.add(FeedbackEvent(report_id=report.id, actor_id=principal.user_id, actor_role="resident",
                              action="followed", unit_id=report.handling_unit_id))
    session.commit()
    return True


# --- who may see and do what ------------------------------------------------------------------------


def access(principal: Principal, report: FeedbackReport, authorizer: Any, session: Session | None = None) -> str | None:
    """How the caller sees ``report``: operator, handler, official, reporter, public, or None (not at all)."""
    if principal.is_authenticated:
        if authorizer.allows(principal, ROUTE):
            return "operator"
        if principal.kind != "resident":
            if authorizer.allows(principal, HANDLE, report.handling_unit_id):
                return "handler"
            if authorizer.allows(principal, HANDLE, report.unit_id):
                return "official"  # the place's own officials follow what happens there, without acting
        if report.reporter_id is not None and report.reporter_id == principal.user_id:
            return "reporter"
    if report.state in HIDDEN_STATES:
        if session is not None and principal.is_authenticated and session.get(
                FeedbackFollower, (report.id, principal.user_id)) is not None:
            return "public"
        return None
    return "public"


def visible_report(session: Session, *, principal: Principal, authorizer: Any, report_id: int) -> tuple[FeedbackReport, str]:
    """The report and how the caller sees it; 404 when it does not exist for them."""
    report = session.get(FeedbackReport, report_id)
    level = access(principal, report, authorizer, session) if report is not None else None
    if report is None or level is None:
        raise FeedbackError(404, f"no report {report_id}", field="report_id")
    return report, level


# --- handling -------------------------------------------------------------------------------------------

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
            _attach_photos(session, files, report, photos, kind="resolution", now=now)
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
    notices = [_step_notice(report, audience(session, report) + extra_users, target.value)]
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
    report.search_text = _search_text(report, get_category(session, report.category_id),
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


def audience(session: Session, report: FeedbackReport) -> list[int]:
    """The reporter and the followers: who is told of each step."""
    followers = list(session.exec(select(FeedbackFollower.user_id).where(FeedbackFollower.report_id == report.id)))
    return ([report.reporter_id] if report.reporter_id else []) + [u for u in followers if u != report.reporter_id]


def _step_notice(report: FeedbackReport, users: list[int], state: str) -> Notice:
    name = STATE_NAMES[state]
    # the resolution leads straight to the rating form (the inbox also prompts until it is rated)
    url = f"/m/{MINIAPP}/reports/{report.id}" + ("#rate" if state == ReportState.resolved.value else "")
    return Notice(topic="report_updates", users=users, url=url,
                  title={"vi": f"Phản ánh #{report.id}: {name['vi']}", "en": f"Report #{report.id}: {name['en']}"},
                  body={"vi": report.response or report.reason or report.description[:160],
                        "en": report.response or report.reason or report.description[:160]})


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


def stage(session: Session, notifier: Any, notices: Iterable[Notice]) -> None:
    """Write ``notices`` through the host's notifier into ``session``'s transaction (sent when it commits)."""
    if notifier is None:
        return
    for notice in notices:
        notifier.send(session, miniapp=MINIAPP, topic=notice.topic, title=notice.title, body=notice.body,
                      users=notice.users, roles=notice.roles, url=notice.url, severity=notice.severity)
