"""The feedback search provider: reports by text and place, diacritics ignored, per caller."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from miniapps.feedback import listings, service
from miniapps.feedback.models import FeedbackCategory
from miniapps.feedback.permissions import feedback_authorizer
from plugins import OrgUnit


async def search_reports(query: Any) -> list[Any]:
    """Reports whose description, address, category or unit matches; only what the caller may see."""
    from plugins.search import SearchResult

    folded = query.folded.strip()
    if len(folded) < 2:
        return []
    authorizer = feedback_authorizer()

    def work() -> list[Any]:
        with query.host.session() as session:
            rows = listings.search_reports(session, folded=folded, principal=query.principal, authorizer=authorizer,
                                          limit=query.limit)
            # Categories and places in one query each (at most ``limit`` ids): one look-up per result was
            # 20 of a box request's 22 statements.
            categories = {c.id: c for c in session.exec(
                select(FeedbackCategory).where(col(FeedbackCategory.id).in_({r.category_id for r in rows})))}
            units = {u.id: u for u in session.exec(select(OrgUnit).where(col(OrgUnit.id).in_({r.unit_id for r in rows})))}
            results = []
            for report in rows:
                category = categories.get(report.category_id)
                unit = units.get(report.unit_id)
                english = query.locale == "en"
                title = f"#{report.id} {(category.name_en if english else category.name_vi) if category else ''}"
                place = (unit.name_en if english else unit.name_vi) if unit else report.unit_id
                state = service.STATE_NAMES[report.state.value]["en" if english else "vi"]
                results.append(SearchResult(title=title.strip(), url=f"/m/{service.MINIAPP}/reports/{report.id}",
                                            snippet=f"{place} · {state} · {report.description[:120]}", score=0.6))
            return results

    return await run_in_threadpool(work)
