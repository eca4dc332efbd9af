"""Festival domain logic, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from superapp_festival.models import FestivalEvent

host_ready: list[list[str]] = []
upcoming: list[int] = []


def remember_host_ready(event, host) -> None:
    """Record the ids the host announced, so tests can see the subscriber ran."""
    host_ready.append(list(event.miniapp_ids))


def list_events(session: Session) -> list[FestivalEvent]:
    """The programme, in order."""
    return list(session.exec(select(FestivalEvent).order_by(FestivalEvent.starts_at)))


# The next event is the same for every reader and changes rarely: kept in the host's cache for a little
# while, so the feed's first page (which asks every contributor) does not query the programme each time.
NEXT_EVENT_SECONDS = 30.0


def _read_next_event(host, now: datetime) -> FestivalEvent | None:
    with host.session() as session:
        return session.exec(select(FestivalEvent).where(FestivalEvent.starts_at > now)
                            .order_by(FestivalEvent.starts_at).limit(1)).first()


async def next_event_card(context):
    """Feed contributor: a card for the next event of the programme, in the reader's language."""
    from plugins import FeedCard

    cache = context.host.cache("festival", "next_event", ttl=NEXT_EVENT_SECONDS, max_entries=1)
    hit = cache.get("next")  # a 1-tuple, so "no next event" is remembered too
    if hit is None or (hit[0] is not None and hit[0].starts_at <= context.now):
        hit = (await run_in_threadpool(_read_next_event, context.host, context.now),)
        cache.set("next", hit)
    event = hit[0]
    if event is None:
        return []
    english = context.locale == "en"
    return [FeedCard(
        key=f"next-event-{event.id}",
        title=("Next at the festival: " if english else "Sắp diễn ra: ") + (event.title_en if english else event.title_vi),
        body=event.venue, url="/m/festival/", at=event.starts_at,
    )]


def count_upcoming_job(host) -> None:
    """Count the programme's events (the sample's job; tests read ``upcoming``)."""
    with host.session() as session:
        upcoming.append(len(list_events(session)))


def search(query):
    """Events whose title contains the query, with or without diacritics."""
    from plugins import SearchResult, fold

    with query.host.session() as session:
        events = list_events(session)
    hits = [e for e in events if query.folded in fold(e.title_vi) or query.folded in fold(e.title_en)]
    return [
        SearchResult(title=e.title_en if query.locale == "en" else e.title_vi, url="/m/festival/", snippet=e.venue)
        for e in hits[: query.limit]
    ]


DEMO_PROGRAMME = (
    ("Lễ khai mạc Festival Huế", "Festival opening ceremony", "Đại Nội Huế", datetime(2026, 6, 6, 20, tzinfo=UTC)),
    ("Đêm Hoàng cung", "Royal Palace night", "Đại Nội Huế", datetime(2026, 6, 7, 19, tzinfo=UTC)),
    ("Lễ hội đường phố", "Street festival", "Đường Lê Lợi", datetime(2026, 6, 8, 16, tzinfo=UTC)),
)


def load_demo_programme(host):
    """Add the demo programme once; yields a progress line."""
    with host.session() as session:
        if list_events(session):
            yield "programme already loaded"
            return
        for title_vi, title_en, venue, starts_at in DEMO_PROGRAMME:
            session.add(FestivalEvent(title_vi=title_vi, title_en=title_en, venue=venue, starts_at=starts_at))
        session.commit()
    yield f"{len(DEMO_PROGRAMME)} programme events added"
