"""Festival domain logic, no HTTP."""

from __future__ import annotations

from sqlmodel import Session, select

from superapp_festival.models import FestivalEvent

host_ready: list[list[str]] = []
upcoming: list[int] = []


def remember_host_ready(event, host) -> None:
    """Record the ids the host announced, so tests can see the subscriber ran."""
    host_ready.append(list(event.miniapp_ids))


def list_events(session: Session) -> list[FestivalEvent]:
    """The programme, in order."""
    return list(session.exec(select(FestivalEvent).order_by(FestivalEvent.starts_at)))


def count_upcoming_job(host) -> None:
    """Count the programme's events (the sample's job; tests read ``upcoming``)."""
    with host.session() as session:
        upcoming.append(len(list_events(session)))


def search(query):
    """Events whose title contains the query, with or without diacritics."""
    from core.text import fold
    from plugins.search import SearchResult

    with query.host.session() as session:
        events = list_events(session)
    hits = [e for e in events if query.folded in fold(e.title_vi) or query.folded in fold(e.title_en)]
    return [
        SearchResult(title=e.title_en if query.locale == "en" else e.title_vi, url="/m/festival/", snippet=e.venue)
        for e in hits[: query.limit]
    ]
