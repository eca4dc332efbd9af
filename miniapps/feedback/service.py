"""Field reports: categories, places and routing, filing, who may see a report and who is told. No HTTP."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import false
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


def search_text(report: FeedbackReport, category: FeedbackCategory, units: Iterable[OrgUnit | None]) -> str:
    """The folded text a report is found by: its words, its category's names and its units' names."""
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
    report.search_text = search_text(report, category, [unit, session.get(OrgUnit, handler)])
    session.add(report)
    session.flush()
    try:
        with all_or_nothing(store) as files:
            attach_photos(session, files, report, photos, kind="report", now=now)
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
                notices.append(step_notice(report, [reporter_id], "submitted"))
            stage(session, notifier, notices)
            session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(report)
    return report


def attach_photos(session: Session, files: FileBatch, report: FeedbackReport, photos: Sequence[ProcessedPhoto],
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


# --- who is told ---------------------------------------------------------------------------------------


def audience(session: Session, report: FeedbackReport) -> list[int]:
    """The reporter and the followers: who is told of each step."""
    followers = list(session.exec(select(FeedbackFollower.user_id).where(FeedbackFollower.report_id == report.id)))
    return ([report.reporter_id] if report.reporter_id else []) + [u for u in followers if u != report.reporter_id]


def step_notice(report: FeedbackReport, users: list[int], state: str) -> Notice:
    """The notice telling ``users`` that ``report`` reached ``state``."""
    name = STATE_NAMES[state]
    # the resolution leads straight to the rating form (the inbox also prompts until it is rated)
    url = f"/m/{MINIAPP}/reports/{report.id}" + ("#rate" if state == ReportState.resolved.value else "")
    return Notice(topic="report_updates", users=users, url=url,
                  title={"vi": f"Phản ánh #{report.id}: {name['vi']}", "en": f"Report #{report.id}: {name['en']}"},
                  body={"vi": report.response or report.reason or report.description[:160],
                        "en": report.response or report.reason or report.description[:160]})


def stage(session: Session, notifier: Any, notices: Iterable[Notice]) -> None:
    """Write ``notices`` through the host's notifier into ``session``'s transaction (sent when it commits)."""
    if notifier is None:
        return
    for notice in notices:
        notifier.send(session, miniapp=MINIAPP, topic=notice.topic, title=notice.title, body=notice.body,
                      users=notice.users, roles=notice.roles, url=notice.url, severity=notice.severity)
