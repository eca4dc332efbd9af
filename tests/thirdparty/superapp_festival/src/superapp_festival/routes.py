"""The festival's API and page."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from plugins import SessionDep, host_of, render_page, require_scope
from superapp_festival import service

api = APIRouter()
pages = APIRouter()


@api.get("/events", operation_id="list_events")
def list_events(request: Request, session: SessionDep) -> list[dict]:
    """The festival programme, as long and in the order an admin set in the mini-app's settings."""
    settings = host_of(request).settings_for("festival")
    events = service.list_events(session)
    if settings.ordering == "venue":
        events = sorted(events, key=lambda e: (e.venue, e.starts_at))
    return [event.model_dump(mode="json") for event in events[: settings.max_events]]


@api.get("/events/nearby", operation_id="events_near_me",
         dependencies=[require_scope("location")])
def events_near_me(session: SessionDep, lat: float = Query(ge=-90, le=90), lon: float = Query(ge=-180, le=180)) -> list[dict]:
    """Events near a point; needs the resident's location, so the location scope must be granted."""
    return [event.model_dump(mode="json") for event in service.list_events(session)]


@pages.get("/")
def programme(request: Request, session: SessionDep):
    """The programme page."""
    return render_page(request, "festival/programme.html", {"events": service.list_events(session)})
