"""Residents' reports of the water depth where they stand, with an optional photo from the shared media
service (``core.media``: checked, rotated, EXIF stripped). A report belongs to the unit the point lies in
(``core.units.places.unit_at``, the lookup feedback uses too). Who sees a report: its reporter, the officials of its
unit holding ``floodmap.reports.read``, operators and admins; for anyone else it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from miniapps.floodmap.models import FloodReport
from plugins import DomainError, MediaStore, ProcessedPhoto, all_or_nothing, places

READ_PERMISSION = "floodmap.reports.read"
MAX_DEPTH_CM = 300


@dataclass(frozen=True)
class Reporter:
    """Who files a report: the resident's id."""

    user_id: int


def file_report(db: Session, media: MediaStore, *, reporter: Reporter, lat: float | None, lon: float | None,
                depth_cm: int, note: str, photo: ProcessedPhoto | None, now: datetime | None = None) -> FloodReport:
    """Store a report and its photo together: either both are kept or neither."""
    if (lat is None or lon is None) and photo is not None and photo.gps is not None:
        lat, lon = photo.gps
    if lat is None or lon is None:
        raise DomainError(422, "send lat and lon (or a photo with its location in it)", field="body.lat")
    if not places.in_hue(lat, lon):
        raise DomainError(422, "this place is outside Hue", field="body.lat")
    if not 0 <= depth_cm <= MAX_DEPTH_CM:
        raise DomainError(422, f"depth_cm must be from 0 to {MAX_DEPTH_CM}", field="body.depth_cm")
    placement = places.unit_at(db, lat, lon)
    if placement is None:
        raise DomainError(503, "Hue's units are not loaded; run superapp db upgrade", field="body.lat")
    report = FloodReport(user_id=reporter.user_id, unit_id=placement.unit.id, lat=lat, lon=lon,
                         depth_cm=depth_cm, note=note.strip()[:500], created_at=now or datetime.now(UTC))
    db.add(report)
    db.flush()
    try:
        with all_or_nothing(media) as files:
            if photo is not None:
                report.photo_key = files.put(f"floodmap/reports/{report.id}/photo.jpg", photo.display, "image/jpeg")
                report.thumbnail_key = files.put(f"floodmap/reports/{report.id}/thumbnail.jpg", photo.thumbnail,
                                                 "image/jpeg")
            db.add(report)
            db.commit()
    except BaseException:
        db.rollback()
        raise
    db.refresh(report)
    return report


def may_see(principal: Any, authorizer: Any, report: FloodReport) -> bool:
    """The reporter, officials of the report's unit with the read permission, operators and admins."""
    if principal.user_id == report.user_id:
        return True
    return principal.kind == "official" and authorizer.allows(principal, READ_PERMISSION, report.unit_id)


def visible_reports(db: Session, *, principal: Any, authorizer: Any, limit: int = 100) -> list[FloodReport]:
    """The reports ``principal`` may see, newest first."""
    query = select(FloodReport).order_by(FloodReport.id.desc()).limit(limit)
    if principal.kind != "official" or not authorizer.allows(principal, READ_PERMISSION):
        return list(db.scalars(query.where(FloodReport.user_id == principal.user_id)))
    units = authorizer.units_for(principal, READ_PERMISSION)
    if units is not None:
        query = query.where(FloodReport.unit_id.in_(sorted(units)))
    return list(db.scalars(query))


def report_json(report: FloodReport) -> dict[str, Any]:
    """A report as the API shows it (the reporter's id only to those who may see the report)."""
    base = f"/api/miniapps/floodmap/reports/{report.id}"
    return {
        "id": report.id, "unit_id": report.unit_id, "lat": report.lat, "lon": report.lon, "depth_cm": report.depth_cm,
        "note": report.note, "created_at": report.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "photo": f"{base}/photo" if report.photo_key else None,
        "thumbnail": f"{base}/photo?size=thumbnail" if report.thumbnail_key else None,
    }
