"""The festival's API and page."""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.db import SessionDep
from core.web import render_page
from superapp_festival import service

api = APIRouter()
pages = APIRouter()


@api.get("/events", operation_id="list_events")
def list_events(session: SessionDep) -> list[dict]:
    """The festival programme."""
    return [event.model_dump(mode="json") for event in service.list_events(session)]


@pages.get("/")
def programme(request: Request, session: SessionDep):
    """The programme page."""
    return render_page(request, "festival/programme.html", {"events": service.list_events(session)})
