"""Field reports (phản ánh hiện trường): residents report problems, units handle them; Open311 GeoReport v2."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from plugins import hookimpl, read_manifest

HERE = Path(__file__).parent


@hookimpl
def superapp_manifest():
    """The manifest kept in manifest.json."""
    return read_manifest(__file__)


@hookimpl
def superapp_register_models(register):
    """Categories, reports, photos, timeline, followers and Open311 keys, with their migration branch."""
    from miniapps.feedback import models

    register(models.FeedbackCategory, models.FeedbackReport, models.FeedbackPhoto, models.FeedbackEvent,
             models.FeedbackFollower, models.FeedbackApiKey, migrations=HERE / "migrations")


@hookimpl
def superapp_register_permissions(register):
    """Residents file; units handle; operators route and read the dashboard; admins issue Open311 keys."""
    from miniapps.feedback.permissions import PERMISSIONS

    for name, (vi, en, roles) in PERMISSIONS.items():
        register(name, description={"vi": vi, "en": en}, roles=roles)


@hookimpl
def superapp_register_routes(register):
    """The JSON API, the pages, templates, static files and the Open311 root."""
    from miniapps.feedback import open311, pages, routes

    register(api=routes.api, pages=pages.router, templates=HERE / "templates" / "feedback", static=HERE / "static",
             roots={"/open311": open311.router}, before_routing={"/reports.geojson": routes.kept_geojson})


@hookimpl
def superapp_register_scheduled_jobs(register):
    """Escalate overdue reports to operators, and close resolutions left alone past the reopening window."""
    from miniapps.feedback import jobs

    register("escalate_overdue", jobs.escalate_overdue, every=timedelta(minutes=15))
    register("close_stale", jobs.close_stale, every=timedelta(hours=6))


@hookimpl
def superapp_register_search_providers(register):
    """Reports by text and place."""
    from miniapps.feedback.search import search_reports

    register(search_reports, label={"vi": "Phản ánh hiện trường", "en": "Field reports"})


@hookimpl
def superapp_register_inbox_prompts(register):
    """"Rate it" for a resident's resolved reports until they rate them."""
    from miniapps.feedback.prompts import rating_prompts

    register(rating_prompts)


@hookimpl
def superapp_register_demo_data(register):
    """Categories, a department official for the environment, and a few reports in different states."""
    from miniapps.feedback.demo import load_demo

    register(load_demo)
