"""The tasks search provider for the one search box: tasks by text, unit and status, only those the
caller may see."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from miniapps.tasks.service import (
    ASSIGNEE_KINDS,
    STATUS_NAMES,
    STATUS_WORDS,
    reach_of,
    visible_assignments,
)
from plugins import OrgUnit, fold
from plugins.search import SearchQuery, SearchResult


def _pick_status(folded: str) -> tuple[object, str]:
    """The status a query names (longest phrase first), and the query without it."""
    for words in sorted(STATUS_WORDS, key=len, reverse=True):
        if words in folded:
            return STATUS_WORDS[words], " ".join(folded.replace(words, " ").split())
    return None, folded


def search_tasks(query: SearchQuery) -> list[SearchResult]:
    """Tasks whose title or description match, narrowed by a unit's name or a status named in the query."""
    principal = query.principal
    if principal is None or not principal.is_authenticated:
        return []
    reach = reach_of(principal)
    if not (reach.everything or reach.assigner_units or reach.assignee_units):
        return []
    status, rest = _pick_status(query.folded)
    with query.host.session() as session:
        units = session.exec(select(OrgUnit).where(OrgUnit.kind.in_(ASSIGNEE_KINDS))).all()  # type: ignore[attr-defined]
        unit = None
        for candidate in sorted(units, key=lambda u: -len(u.name_vi)):
            for name in (fold(candidate.name_vi), fold(candidate.name_en), fold(candidate.name_vi.split(" ", 1)[-1])):
                if name and name in rest:
                    unit, rest = candidate, " ".join(rest.replace(name, " ").split())
                    break
            if unit:
                break
        found = visible_assignments(session, reach, unit_id=unit.id if unit else None, text=rest or None,
                                    status=status, now=datetime.now(UTC))  # type: ignore[arg-type]
        names = {u.id: (u.name_en if query.locale == "en" else u.name_vi) for u in units}
    results: list[SearchResult] = []
    seen: set[int] = set()
    for item in found:
        if unit is None and status is None:
            if item.task.id in seen:
                continue
            seen.add(item.task.id or 0)
            results.append(SearchResult(title=item.task.title, url=f"/m/tasks/tasks/{item.task.id}",
                                        snippet=item.task.description[:140], score=0.8))
        else:
            results.append(SearchResult(
                title=item.task.title, url=f"/m/tasks/assignments/{item.assignment.id}",
                snippet=f"{names.get(item.assignment.unit_id, item.assignment.unit_id)}: "
                        f"{STATUS_NAMES[item.status][query.locale if query.locale in ('vi', 'en') else 'vi']}",
                score=0.9))
        if len(results) >= query.limit:
            break
    return results
