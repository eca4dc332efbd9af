"""Task monitoring: targets and tasks assigned to communes and wards, progress reports, evaluation and
rankings, administrative-procedure statistics. Hook implementations only; the work is in the modules."""

from __future__ import annotations

from pathlib import Path

from plugins import hookimpl, read_manifest

HERE = Path(__file__).parent
OFFICIALS = ["commune_official", "department_official", "operator"]


@hookimpl
def superapp_manifest():
    """The manifest kept in manifest.json."""
    return read_manifest(__file__)


@hookimpl
def superapp_register_models(register):
    """The tasks tables and their migration branch."""
    from miniapps.tasks.models import MODELS

    register(*MODELS, migrations=HERE / "migrations")


@hookimpl
def superapp_register_permissions(register):
    """Who sees, assigns, reports, reviews, closes periods and imports procedure records."""
    register("view", description={"vi": "Xem nhiệm vụ, xếp hạng và số liệu thủ tục hành chính",
                                  "en": "See tasks, rankings and procedure figures"}, roles=OFFICIALS)
    register("assign", description={"vi": "Giao nhiệm vụ cho phường, xã", "en": "Assign tasks to communes and wards"},
             roles=["department_official", "operator"])
    register("report", description={"vi": "Báo cáo tiến độ nhiệm vụ của đơn vị", "en": "Report progress on the unit's tasks"},
             roles=["commune_official"])
    register("review", description={"vi": "Duyệt hoặc trả lại báo cáo", "en": "Accept or return reports"},
             roles=["department_official", "operator"])
    register("periods.close", description={"vi": "Chốt kỳ đánh giá", "en": "Close an evaluation period"},
             roles=["operator"])
    register("procedures.import", description={"vi": "Nhập số liệu hồ sơ thủ tục hành chính",
                                               "en": "Import administrative-procedure records"}, roles=["operator"])


@hookimpl
def superapp_register_routes(register):
    """The JSON API, the pages, their templates and the stylesheet."""
    from miniapps.tasks.pages import pages
    from miniapps.tasks.routes import api

    register(api=api, pages=pages, templates=HERE / "templates" / "tasks", static=HERE / "static")


@hookimpl
def superapp_register_scheduled_jobs(register):
    """Hourly: reminders before deadlines and overdue notices, each sent once."""
    from miniapps.tasks.jobs import EVERY, deadline_notices_job

    register("deadline_notices", deadline_notices_job, every=EVERY)


@hookimpl
def superapp_register_search_providers(register):
    """Tasks by text, unit and status."""
    from miniapps.tasks.search import search_tasks

    register(search_tasks, label={"vi": "Nhiệm vụ", "en": "Tasks"})


@hookimpl
def superapp_register_demo_data(register):
    """The Department of Home Affairs' demo tasks and Hue's July 2025 procedure records."""
    from miniapps.tasks.demo import load_demo

    register(load_demo)
