"""The flood map's answers in the one search box: stations and the places they stand at."""

from __future__ import annotations

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from miniapps.floodmap.alerts import LEVEL_NAMES
from miniapps.floodmap.models import FloodLocation, FloodThing
from plugins import fold
from plugins.search import SearchResult

MINIAPP = "floodmap"
# Stations are read (and their names folded) at most this often for the box: a level shown in a result may
# be this old; the station's page and the map, which it links to, are current.
STATIONS_SECONDS = 5.0


def _stations(host) -> list[tuple[int, str, str, int, bool, str, str, str]]:
    """Every station at each of its places, highest level first: (id, name, code, level, stale, place,
    folded name, folded place)."""
    with host.session() as db:
        rows = db.execute(select(FloodThing.id, FloodThing.name, FloodThing.code, FloodThing.level,
                                 FloodThing.stale, FloodLocation.name)
                          .join(FloodLocation, FloodLocation.thing_id == FloodThing.id)
                          .order_by(FloodThing.level.desc(), FloodThing.name)).all()
    return [(thing_id, name, code, level, stale, place, fold(name), fold(place))
            for thing_id, name, code, level, stale, place in rows]


async def search_stations(query) -> list[SearchResult]:
    """Stations whose name, code or place matches the query, with or without diacritics (on the event loop
    while the stations read last are fresh: no thread hop, no connection)."""
    kept = query.host.cache(MINIAPP, "search_stations", ttl=STATIONS_SECONDS, max_entries=1)
    stations = kept.get("stations")
    if stations is None:
        stations = await run_in_threadpool(_stations, query.host)
        kept.set("stations", stations)
    english = query.locale == "en"
    results: dict[int, SearchResult] = {}
    for thing_id, name, code, level, stale, place, folded_name, folded_place in stations:
        if thing_id in results:
            continue
        in_name = query.folded in folded_name or query.folded in code
        in_place = query.folded in folded_place
        if not (in_name or in_place):
            continue
        status = LEVEL_NAMES[level]["en" if english else "vi"]
        if stale:
            status += " · " + ("stale" if english else "mất tín hiệu")
        results[thing_id] = SearchResult(title=name, url=f"/m/floodmap/stations/{thing_id}",
                                         snippet=f"{place} · {status}", score=1.0 if in_name else 0.7)
    return list(results.values())[: query.limit]
