"""The one search box: ``GET /api/search`` and the ``/search`` page fan out to every mini-app's provider.

Each provider the caller may use (its mini-app is one the caller sees on the home screen) is asked at
once, with one time budget for all; a provider that is slow, fails or answers nonsense is reported in
``sources`` and leaves the others' results standing. Results are merged by score, each with its source.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from core.i18n import negotiate
from core.identity.deps import PrincipalDep
from core.manifests import visible_miniapps
from core.text import fold
from core.web import page_locale, render_page
from plugins.registry import SearchProvider
from plugins.search import SearchQuery, SearchResult

log = logging.getLogger(__name__)
router = APIRouter(tags=["search"])
pages = APIRouter(include_in_schema=False)

MAX_QUERY = 200
SOURCE_OUTCOMES = Counter("superapp_search_source_total", "Search provider answers by outcome", ["miniapp", "outcome"])


class Hit(BaseModel):
    """One merged result, with the mini-app it came from."""

    source: str
    source_label: str
    title: str
    url: str
    snippet: str
    score: float


class SourceReport(BaseModel):
    """How one provider fared: ``ok``, ``timeout`` or ``error``, how many hits, how long it took."""

    source: str
    label: str
    status: str
    count: int
    ms: float


class SearchAnswer(BaseModel):
    """The merged answer of ``GET /api/search``."""

    query: str
    folded: str
    locale: str
    results: list[Hit]
    sources: list[SourceReport]


@dataclass(frozen=True)
class _Outcome:
    provider: SearchProvider
    status: str
    results: list[SearchResult]
    ms: float


async def _ask(provider: SearchProvider, query: SearchQuery) -> list[SearchResult]:
    """Call one provider (coroutine or plain function, the latter off the event loop) and check its answer."""
    if inspect.iscoroutinefunction(provider.search):
        answer = await provider.search(query)
    else:
        answer = await run_in_threadpool(provider.search, query)
        if inspect.isawaitable(answer):
            answer = await answer
    results = [item if isinstance(item, SearchResult) else SearchResult.model_validate(item) for item in answer or []]
    return results[: query.limit]


async def fan_out(providers: list[SearchProvider], query: SearchQuery, *, budget: float) -> list[_Outcome]:
    """Ask every provider at once; whatever has not answered when the budget is spent counts as a timeout."""
    started = time.perf_counter()
    finished_at: dict[int, float] = {}

    async def timed(index: int, provider: SearchProvider) -> list[SearchResult]:
        try:
            return await _ask(provider, query)
        finally:
            finished_at[index] = (time.perf_counter() - started) * 1000

    tasks = [asyncio.create_task(timed(i, p)) for i, p in enumerate(providers)]
    if tasks:
        await asyncio.wait(tasks, timeout=budget)
    outcomes: list[_Outcome] = []
    for index, (provider, task) in enumerate(zip(providers, tasks, strict=True)):
        ms = finished_at.get(index, budget * 1000)
        results: list[Any]
        if not task.done():
            task.cancel()  # a thread-pool provider finishes in the background; its answer is dropped
            status, results = "timeout", []
        elif task.exception() is not None:
            log.warning("search provider of %s failed", provider.miniapp, exc_info=task.exception())
            status, results = "error", []
        else:
            status, results = "ok", task.result()
        SOURCE_OUTCOMES.labels(provider.miniapp, status).inc()
        outcomes.append(_Outcome(provider, status, results, round(ms, 1)))
    return outcomes


def _checked_query(q: str) -> str:
    text = " ".join(q.split())
    if not text:
        raise Problem(422, "Type something to search for.", field="query.q")
    if len(text) > MAX_QUERY:
        raise Problem(422, f"A search is at most {MAX_QUERY} characters.", field="query.q")
    return text


def search_hint(shown: Any, locale: str) -> str:
    """The search box's placeholder: what this caller's search covers, from the labels of the providers
    of ``shown``, the mini-apps they may use (a resident is not promised the officials' questions or tasks)."""
    labels = [p.label.get(locale) for m in shown for p in m.search_providers]
    if not labels:
        return "Tìm kiếm" if locale == "vi" else "Search"
    return ("Tìm " if locale == "vi" else "Search ") + ", ".join(label.lower() for label in labels) + "…"


async def search(request: Request, principal: Any, *, text: str, locale: str, limit: int) -> SearchAnswer:
    """Run one search for ``principal`` across the providers of the mini-apps they may use."""
    state = request.app.state
    shown = visible_miniapps(state.miniapps, principal)
    providers = [p for m in shown for p in m.search_providers]
    query = SearchQuery(text=text, folded=fold(text), locale=locale, principal=principal, host=state.host,
                        limit=limit)
    outcomes = await fan_out(providers, query, budget=state.settings.search_budget_seconds)
    order = {m.id: i for i, m in enumerate(shown)}
    hits = [
        Hit(source=o.provider.miniapp, source_label=o.provider.label.get(locale), title=r.title, url=r.url,
            snippet=r.snippet, score=r.score)
        for o in outcomes for r in o.results
    ]
    # Best first; equal scores keep the home screen's order of mini-apps, then each provider's own order.
    hits.sort(key=lambda h: (-h.score, order.get(h.source, 0)))
    sources = [SourceReport(source=o.provider.miniapp, label=o.provider.label.get(locale), status=o.status,
                            count=len(o.results), ms=o.ms) for o in outcomes]
    return SearchAnswer(query=text, folded=query.folded, locale=locale, results=hits[:limit], sources=sources)


@router.get("/api/search", operation_id="search", summary="Search every mini-app the caller may use")
async def search_api(
    request: Request,
    principal: PrincipalDep,
    q: Annotated[str, Query(max_length=1000, description="What to look for, with or without diacritics.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> SearchAnswer:
    """Merged results from every provider the caller may use, each with its source, within the time budget."""
    locale = negotiate(user_locale=principal.locale, accept_language=request.headers.get("accept-language"),
                       default=request.app.state.settings.locale)
    return await search(request, principal, text=_checked_query(q), locale=locale, limit=limit)


@pages.get("/search", response_class=HTMLResponse, name="search_page")
async def search_page(request: Request, principal: PrincipalDep, q: str = "") -> HTMLResponse:
    """The search page of the shell: the box, then the merged results labelled with their source."""
    locale = page_locale(request)
    answer, error = None, None
    if q.strip():
        try:
            answer = await search(request, principal, text=_checked_query(q), locale=locale, limit=30)
        except Problem as problem:
            error = problem.detail
    return render_page(request, "shell/search.html", {"q": q, "answer": answer, "error": error},
                       status_code=422 if error else 200)
