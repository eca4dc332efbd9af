"""Hue Festival events: a third-party mini-app registered through the ``superapp.miniapps`` entry point."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from plugins import MiniAppsLoaded, hookimpl, read_manifest
from superapp_festival import models, routes, service
from superapp_festival.settings import FestivalSettings

HERE = Path(__file__).parent


@hookimpl
def superapp_manifest():
    """The manifest kept in manifest.json."""
    return read_manifest(__file__)


@hookimpl
def superapp_register_models(register):
    """The events table and its migration branch."""
    register(models.FestivalEvent, migrations=HERE / "migrations")


@hookimpl
def superapp_register_permissions(register):
    """Operators publish the programme."""
    register("events.publish", description={"vi": "Đăng sự kiện", "en": "Publish events"}, roles=["operator"])


@hookimpl
def superapp_register_settings(register):
    """Admins tune the programme listing and keep the ticketing key (encrypted)."""
    register(FestivalSettings)


@hookimpl
def superapp_register_routes(register):
    """The JSON API, the page and its template folder."""
    register(api=routes.api, pages=routes.pages, templates=HERE / "templates", static=HERE / "static")


@hookimpl
def superapp_register_event_subscribers(register):
    """Note when the host has loaded every mini-app (a simple, observable subscriber)."""
    register(MiniAppsLoaded, service.remember_host_ready)


@hookimpl
def superapp_register_feed_contributors(register):
    """A card for the next programme event at the top of the feed."""
    register(service.next_event_card)


@hookimpl
def superapp_register_scheduled_jobs(register):
    """Count upcoming events once an hour."""
    register("count_upcoming", service.count_upcoming_job, every=timedelta(hours=1))


@hookimpl
def superapp_register_search_providers(register):
    """Events by title."""
    register(service.search, label={"vi": "Sự kiện", "en": "Events"})


@hookimpl
def superapp_register_channels(register):
    """miniapp:festival:live, programme updates as they happen, for anyone signed in."""
    register("live", lambda principal, name: name == "live" and principal.is_authenticated)


@hookimpl
def superapp_register_demo_data(register):
    """A few programme events for the demo."""
    register(service.load_demo_programme)
