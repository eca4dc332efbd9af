"""The flood map's answers in the one search box: stations and the places they stand at."""

from __future__ import annotations

from sqlalchemy import select

from miniapps.floodmap.alerts import LEVEL_NAMES
from miniapps.floodmap.models import FloodLocation, FloodThing
from plugins import fold
from plugins.search import SearchResult


def search_stations(query) -> list[SearchResult]:
    """Stations whose name, code or place matches the query, with or without diacritics."""
    with query.host.session() as db:
        rows = db.execute(select(FloodThing.id, FloodThing.name, FloodThing.code, FloodThing.level,
                                 FloodThing.stale, FloodLocation.name)
                          .join(FloodLocation, FloodLocation.thing_id == FloodThing.id)
                          .order_by(FloodThing.level.desc(), FloodThing.name)).all()
    english = query.locale == "en"
    results: dict[int, SearchResult] = {}
    for thing_id, name, code, level, stale, place in rows:
        if thing_id in results:
            continue
        in_name = query.folded in fold(name) or query.folded in code
        in_place = query.folded in fold(place)
        if not (in_name or in_place):
            continue
        status = LEVEL_NAMES[level]["en" if english else "vi"]
        if stale:
            status += " · " + ("stale" if english else "mất tín hiệu")
        results[thing_id] = SearchResult(title=name, url=f"/m/floodmap/stations/{thing_id}",
                                         snippet=f"{place} · {status}", score=1.0 if in_name else 0.7)
    return list(results.values())[: query.limit]
