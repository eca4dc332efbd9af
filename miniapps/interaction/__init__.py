"""2-level interaction: commune and ward officials ask city departments; everyone reuses the answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from plugins import hookimpl, read_manifest

HERE = Path(__file__).parent
PERMISSION_TEXTS = {
    "questions.read": ("Xem câu hỏi, câu trả lời và cẩm nang", "Read questions, answers and the handbook"),
    "questions.ask": ("Hỏi các sở thay mặt phường, xã", "Ask departments for a commune or ward"),
    "questions.answer": ("Trả lời câu hỏi thay mặt sở", "Answer questions for a department"),
    "questions.transfer": ("Chuyển câu hỏi sang sở khác", "Move questions to another department"),
    "questions.curate": ("Đánh dấu trùng lặp, giới hạn người xem", "Mark duplicates and limit who reads"),
    "articles.publish": ("Đăng bài cẩm nang của sở", "Publish a department's handbook articles"),
    "fields.manage": ("Sửa bảng lĩnh vực và sở phụ trách", "Edit the fields and their departments"),
}


@hookimpl
def superapp_manifest():
    """The manifest kept in manifest.json."""
    return read_manifest(__file__)


@hookimpl
def superapp_register_models(register):
    """The tables and the migration branch (which also creates the full-text index)."""
    from miniapps.interaction import models

    register(models.InteractionField, models.Question, models.Reply, models.Attachment, models.Transfer,
             models.Article, models.SearchEntry, models.SearchVersion, migrations=HERE / "migrations")


@hookimpl
def superapp_register_permissions(register):
    """Who asks, answers, moves, curates, publishes and edits the routing table (admins hold all)."""
    from miniapps.interaction.service import PERMISSION_ROLES

    for name, roles in PERMISSION_ROLES.items():
        local = name.removeprefix("interaction.")
        vi, en = PERMISSION_TEXTS[local]
        register(local, description={"vi": vi, "en": en}, roles=list(roles))


@hookimpl
def superapp_register_routes(register):
    """The JSON API, the pages, their templates and static files."""
    from miniapps.interaction import pages, routes

    register(api=routes.api, pages=pages.pages, templates=HERE / "templates" / "interaction", static=HERE / "static")


@hookimpl
def superapp_register_scheduled_jobs(register):
    """Escalate questions whose first answer is overdue, every quarter of an hour."""
    from miniapps.interaction.jobs import escalate_overdue

    register("escalate_overdue", escalate_overdue, every=timedelta(minutes=15))


@hookimpl
def superapp_register_search_providers(register):
    """Answered questions and handbook articles in the one search box."""
    from miniapps.interaction.search import search_knowledge

    register(search_knowledge, label={"vi": "Hỏi đáp và cẩm nang", "en": "Questions and handbook"})


@hookimpl
def superapp_register_channels(register):
    """miniapp:interaction:question:<id>, a thread's new answers and comments, for those who may see it."""
    from miniapps.interaction.live import may_watch

    register("question", may_watch)


@hookimpl
def superapp_register_demo_data(register):
    """Demo officials for Phu Vang and the Department of Agriculture and Environment, answered questions, articles."""
    from miniapps.interaction.demo import load_demo

    register(load_demo)
