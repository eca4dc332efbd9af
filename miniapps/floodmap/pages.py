"""The flood map's pages (the host mounts them under /m/floodmap): the live map, a station with its
72-hour chart, a warning, and the operators' dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlmodel import select

from miniapps.floodmap import reports
from miniapps.floodmap.alerts import LEVEL_COLOURS, LEVEL_NAMES, REASON_NAMES, STALE_NAME, level_rule, number
from miniapps.floodmap.models import FloodLevelChange, FloodWarning
from miniapps.floodmap.stations import chart_svg, feature_collection, station_view
from miniapps.floodmap.warnings import (
    MAP_CHANNEL,
    active_warnings,
    recent_warnings,
    warning_json,
)
from plugins import DomainError, OrgUnit, PrincipalDep, SessionDep, host_of, page_locale, render_page

pages = APIRouter()
HUE = ZoneInfo("Asia/Ho_Chi_Minh")


def hue_clock(value: datetime | str | None) -> str:
    """A moment (a datetime or the API's ISO text) as Hue reads a clock: ``dd/mm/yyyy HH:MM``."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(HUE).strftime("%d/%m/%Y %H:%M")


def _wording(locale: str) -> dict:
    """What the flood pages need to say readings, times and rules in the page's language."""
    return {"clock": hue_clock, "num": lambda value, digits=2: number(value, locale, digits),
            "rule": lambda reason, level, threshold, symbol: level_rule(reason, level, threshold, symbol or "", locale),
            "reason_names": REASON_NAMES, "stale_name": STALE_NAME}
DASHBOARD_PERMISSION = "floodmap.dashboard.view"
ISSUE_PERMISSION = "floodmap.warnings.issue"


@pages.get("/", response_class=HTMLResponse)
def map_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """The live map: stations coloured by level; live over /ws when signed in, else re-read every 30 s."""
    collection = feature_collection(db)
    warnings = [warning_json(w) for w in active_warnings(db)]
    return render_page(request, "floodmap/map.html", {
        "collection": collection, "warnings": warnings, "channel": MAP_CHANNEL,
        "live": principal.is_authenticated, "tile_url": host_of(request).settings.map_tile_url or "",
        "level_names": LEVEL_NAMES, "level_colours": LEVEL_COLOURS, **_wording(page_locale(request)),
        # The dashboard link is shown only to those it would let in.
        "may_dashboard": principal.is_authenticated and host_of(request).authorizer.allows(principal, DASHBOARD_PERMISSION),
    })


@pages.get("/stations/{station_id}", response_class=HTMLResponse)
def station_page(request: Request, station_id: int, db: SessionDep) -> Response:
    """One station: level, last reading, alarm levels, the last 72 hours as an SVG chart, its history."""
    now = datetime.now(UTC)
    view = station_view(db, station_id, now=now)
    if view is None:
        raise DomainError(404, f"no station {station_id}", field="path.station_id")
    props = view.feature["properties"]
    chart = None
    if view.stream is not None:
        chart = Markup(chart_svg(view.readings, thresholds=props["thresholds"] or [], unit=view.stream.unit_symbol,
                                 now=now, title=props["name"],
                                 now_label={"vi": "bây giờ", "en": "now"}[page_locale(request)]))
    history = list(db.scalars(select(FloodLevelChange).where(FloodLevelChange.thing_id == station_id)
                              .order_by(FloodLevelChange.id.desc()).limit(20)))
    # The rule that put the station at its level: the latest rise to it.
    raised = next((c for c in history if c.to_level == props["level"] and c.to_level > c.from_level), None)
    return render_page(request, "floodmap/station.html", {
        "station": props, "chart": chart, "history": history, "level_names": LEVEL_NAMES,
        "readings": len(view.readings), "channel": MAP_CHANNEL, "raised": raised, **_wording(page_locale(request)),
    })


@pages.get("/warnings/{warning_id}", response_class=HTMLResponse)
def warning_page(request: Request, warning_id: int, db: SessionDep) -> Response:
    """One warning, as residents open it from a notification."""
    warning = db.get(FloodWarning, warning_id)
    if warning is None:
        raise DomainError(404, f"no warning {warning_id}", field="path.warning_id")
    units = list(db.exec(select(OrgUnit).where(OrgUnit.id.in_(warning.units)).order_by(OrgUnit.name_vi)))
    return render_page(request, "floodmap/warning.html", {
        "warning": warning_json(warning), "units": units, "level_names": LEVEL_NAMES, "level_colours": LEVEL_COLOURS,
        **_wording(page_locale(request))})


@pages.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, principal: PrincipalDep, db: SessionDep) -> Response:
    """Officials: every station by level, stale sensors, recent warnings; operators also issue warnings."""
    if not principal.is_authenticated:
        return RedirectResponse("/auth/login?next=/m/floodmap/dashboard", status_code=303)
    authorizer = host_of(request).authorizer
    if not authorizer.allows(principal, DASHBOARD_PERMISSION):
        raise DomainError(403, f"you do not have the permission {DASHBOARD_PERMISSION!r}", permission=DASHBOARD_PERMISSION)
    stations = sorted(feature_collection(db)["features"],
                      key=lambda f: (-f["properties"]["level"], not f["properties"]["stale"], f["properties"]["name"]))
    units = list(db.exec(select(OrgUnit).where(OrgUnit.kind.in_(["ward", "commune"])).order_by(OrgUnit.name_vi)))
    stale = sum(1 for f in stations if f["properties"]["stale"])
    return render_page(request, "floodmap/dashboard.html", {
        "stations": [f["properties"] for f in stations], "warnings": [warning_json(w) for w in recent_warnings(db, limit=20)],
        "units": units, "may_issue": authorizer.allows(principal, ISSUE_PERMISSION), "stale": stale,
        "level_names": LEVEL_NAMES, "counts": {level: sum(1 for f in stations if f["properties"]["level"] == level)
                                               for level in range(4)},
        "reports": [reports.report_json(r) for r in reports.visible_reports(
            db, principal=principal, authorizer=authorizer, limit=20)], **_wording(page_locale(request)),
    })
