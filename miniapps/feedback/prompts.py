"""The resident's inbox prompt: rate each of their reports that was resolved and is not rated yet."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from miniapps.feedback.models import FeedbackReport, ReportState
from miniapps.feedback.service import MINIAPP
from plugins import InboxPrompt, PromptContext


def rating_prompts(context: PromptContext) -> list[InboxPrompt]:
    """"Rate it" for the reporter's resolved, unrated reports, newest first (gone once rated or reopened)."""
    principal: Any = context.principal
    if principal.kind != "resident" or not principal.user_id:
        return []
    with context.host.session() as session:
        ids = session.exec(select(FeedbackReport.id).where(
            FeedbackReport.reporter_id == principal.user_id, FeedbackReport.state == ReportState.resolved,
            col(FeedbackReport.rating).is_(None)).order_by(col(FeedbackReport.id).desc()).limit(context.limit)).all()
    english = context.locale == "en"
    return [InboxPrompt(key=f"rate-report-{report_id}", url=f"/m/{MINIAPP}/reports/{report_id}#rate",
                        title=(f"Report #{report_id} is resolved: how was it handled?" if english
                               else f"Phản ánh #{report_id} đã được giải quyết: bạn thấy thế nào?"),
                        action="Rate it" if english else "Đánh giá")
            for report_id in ids]
