"""The tasks search provider for the one search box: tasks by text, unit and status, only those the
caller may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import select

from miniapps.tasks.service import (
    ASSIGNEE_KINDS,
    STATUS_NAMES,
    STATUS_WORDS,
    matching_tasks,
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


MINIAPP = "tasks"
UNITS_SECONDS = 60  # a renamed unit is matched by its new name within a minute


@dataclass(frozen=True)
class _Unit:
    """A unit tasks go to, as the search box matches it (a plain copy: kept and shared between requests)."""

    id: str
    name_vi: str
    name_en: str
    folded: tuple[str, ...]  # the names a query may use: Vietnamese, English, without "Phường"/"Xã"


def _units(host) -> list[_Unit]:
    """The units tasks go to, longest Vietnamese name first."""
    with host.session() as session:
        units = session.exec(select(OrgUnit).where(OrgUnit.kind.in_(ASSIGNEE_KINDS))).all()  # type: ignore[attr-defined]
        return [_Unit(u.id, u.name_vi, u.name_en, (fold(u.name_vi), fold(u.name_en), fold(u.name_vi.split(" ", 1)[-1])))
                for u in sorted(units, key=lambda u: -len(u.name_vi))]


def search_tasks(query: SearchQuery) -> list[SearchResult]:
    """Tasks whose title or description match, narrowed by a unit's name or a status named in the query."""
    principal = query.principal
    if principal is None or not principal.is_authenticated:
        return []
    reach = reach_of(principal)
    if not (reach.everything or reach.assigner_units or reach.assignee_units):
        return []
    status, rest = _pick_status(query.folded)
    now = datetime.now(UTC)
    units = query.host.cache(MINIAPP, "search_units", ttl=UNITS_SECONDS, max_entries=1).get_or_set(
        "units", lambda: _units(query.host))
    with query.host.session() as session:
        unit = None
        for candidate in units:
            for name in candidate.folded:
                if name and name in rest:
                    unit, rest = candidate, " ".join(rest.replace(name, " ").split())
                    break
            if unit:
                break
        # At most one answer's worth of rows: a city's 24 months of tasks for 40 units are tens of thousands
        # of assignments, and a word such as "bao cao" is in most of them.
        if unit is None and status is None:
            tasks = matching_tasks(session, reach, text=rest or None, limit=query.limit)
            found = []
        else:
            tasks = []
            found = visible_assignments(session, reach, unit_id=unit.id if unit else None, text=rest or None,
                                        status=status, now=now, limit=query.limit)  # type: ignore[arg-type]
        names = {u.id: (u.name_en if query.locale == "en" else u.name_vi) for u in units}
    results = [SearchResult(title=task.title, url=f"/m/tasks/tasks/{task.id}", snippet=task.description[:140], score=0.8)
               for task in tasks]
    for item in found:
        results.append(SearchResult(
            title=item.task.title, url=f"/m/tasks/assignments/{item.assignment.id}",
            snippet=f"{names.get(item.assignment.unit_id, item.assignment.unit_id)}: "
                    f"{STATUS_NAMES[item.status][query.locale if query.locale in ('vi', 'en') else 'vi']}",
            score=0.9))
    return results
