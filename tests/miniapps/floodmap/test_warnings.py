"""Warnings: manual ones by operators, CAP 1.2 and its index, the GeoJSON layer, the feed card, the stale
job, the search box; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

from fastapi.testclient import TestClient
from sqlmodel import Session

from miniapps.floodmap import jobs
from miniapps.floodmap.models import FloodThing
from miniapps.floodmap.search import search_stations
from plugins.search import SearchQuery
from tests.miniapps.floodmap.conftest import KIM_LONG, make_people

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
MANUAL = {"unit_ids": ["phu-xuan", "vy-da"], "level": 2, "title": {"vi": "Lũ lên nhanh", "en": "Flood rising fast"},
          "body": {"vi": "Di chuyển lên cao", "en": "Move to higher ground"}}


def test_an_operator_warns_chosen_units_and_only_their_residents_hear(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    issued = fm_client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.operator)
    assert issued.status_code == 201, issued.text
    assert issued.json()["severity"] == "critical" and issued.json()["manual"] is True
    px = fm_client.get("/api/inbox", headers={**people.phu_xuan, "Accept-Language": "en"}).json()
    assert [i["title"] for i in px["items"]] == ["Flood rising fast"]
    kl = fm_client.get("/api/inbox", headers=people.kim_long).json()
    assert kl["items"] == []
    assert fm_client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.kim_long).status_code == 403
    bad = fm_client.post("/api/miniapps/floodmap/warnings", json={**MANUAL, "unit_ids": ["atlantis"]},
                         headers=people.operator)
    assert bad.status_code == 422 and bad.json()["field"] == "body.unit_ids"
    assert fm_client.post("/api/miniapps/floodmap/warnings", json={**MANUAL, "level": 5},
                          headers=people.operator).json()["field"] == "body.level"


def test_a_warning_is_published_as_cap_1_2_and_listed_in_the_index(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    warning = fm_client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.operator).json()
    answer = fm_client.get(warning["cap"])
    assert answer.headers["content-type"].startswith("application/cap+xml")
    alert = ET.fromstring(answer.content)
    assert alert.tag == f"{CAP}alert"
    for field, value in (("status", "Actual"), ("msgType", "Alert"), ("scope", "Public")):
        assert alert.findtext(f"{CAP}{field}") == value
    assert alert.findtext(f"{CAP}identifier") == warning["identifier"]
    sent = alert.findtext(f"{CAP}sent")
    assert sent.endswith("+07:00") and "Z" not in sent
    infos = alert.findall(f"{CAP}info")
    assert [i.findtext(f"{CAP}language") for i in infos] == ["vi-VN", "en-US"]
    english = infos[1]
    assert (english.findtext(f"{CAP}category"), english.findtext(f"{CAP}event"), english.findtext(f"{CAP}urgency"),
            english.findtext(f"{CAP}severity"), english.findtext(f"{CAP}certainty")) == (
        "Met", "Flood", "Immediate", "Severe", "Likely")
    areas = english.findall(f"{CAP}area")
    assert [a.findtext(f"{CAP}areaDesc") for a in areas] == ["Ward Phu Xuan", "Ward Vy Da"]
    centre, radius = areas[0].findtext(f"{CAP}circle").split()
    assert float(centre.split(",")[0]) == 16.4785 and float(radius) > 0
    feed = ET.fromstring(fm_client.get("/api/miniapps/floodmap/cap/feed.atom").content)
    links = [link.get("href") for link in feed.iter("{http://www.w3.org/2005/Atom}link")]
    assert any(href.endswith(warning["cap"]) for href in links)
    assert fm_client.get("/api/miniapps/floodmap/cap/99999.xml").status_code == 404


def test_the_geojson_layer_has_every_station_with_level_and_colour(fm_client) -> None:
    answer = fm_client.get("/api/miniapps/floodmap/stations.geojson")
    assert answer.headers["content-type"].startswith("application/geo+json")
    layer = answer.json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 9
    kim_long = next(f for f in layer["features"] if f["properties"]["code"] == KIM_LONG)
    lon, lat = kim_long["geometry"]["coordinates"]
    assert 107 < lon < 108 and 16 < lat < 17  # RFC 7946 order: longitude first
    assert kim_long["properties"]["thresholds"] == [1.0, 2.0, 3.5] and kim_long["properties"]["colour"].startswith("#")
    synthetic = [f["properties"]["name"] for f in layer["features"] if f["properties"]["synthetic"]]
    assert synthetic and all("synthetic" in name for name in synthetic)
    again = fm_client.get("/api/miniapps/floodmap/stations.geojson", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    zipped = fm_client.get("/api/miniapps/floodmap/stations.geojson", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.json() == layer


def test_the_layer_shows_a_change_at_once_in_the_process_that_ingested_it(fm_app, fm_client) -> None:
    from tests.miniapps.floodmap.conftest import push, readings

    before = fm_client.get("/api/miniapps/floodmap/stations.geojson").json()
    push(fm_client, KIM_LONG, readings(0.71))
    after = fm_client.get("/api/miniapps/floodmap/stations.geojson").json()
    values = [next(f["properties"]["value"] for f in layer["features"] if f["properties"]["code"] == KIM_LONG)
              for layer in (before, after)]
    assert values[1] == 0.71 and values[0] != 0.71


def test_a_silent_sensor_turns_stale_and_keeps_its_level(fm_app) -> None:
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, fm_app.state.test_stations[KIM_LONG])
        thing.level = 2
        db.add(thing)
        db.commit()
    went = asyncio.run(jobs.mark_silent_stations_stale(fm_app.state.host, now=datetime.now(UTC) + timedelta(hours=2)))
    assert fm_app.state.test_stations[KIM_LONG] in went
    again = asyncio.run(jobs.mark_silent_stations_stale(fm_app.state.host, now=datetime.now(UTC) + timedelta(hours=3)))
    assert again == []  # stale once, not every minute
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, fm_app.state.test_stations[KIM_LONG])
    assert thing.stale and thing.level == 2


def test_a_warning_is_a_feed_item_for_its_units_and_reaches_each_resident_once(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    issued = fm_client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.operator).json()

    def feed(headers):
        body = fm_client.get("/api/feed", headers={**headers, "Accept-Language": "en"}).json()
        return [i for i in body["items"] + body.get("pinned", []) if i.get("miniapp") == "floodmap"]

    [item] = feed(people.phu_xuan)
    assert item["title"] == "Flood rising fast" and item["severity"] == "critical" and item["kind"] == "warning"
    assert item["url"] == f"/m/floodmap/warnings/{issued['id']}"
    assert feed(people.elsewhere) == []  # a unit the warning is not for
    inbox = fm_client.get("/api/inbox", headers=people.phu_xuan).json()["items"]
    assert len(inbox) == 1  # the notifier told them; the feed item did not tell them again


def test_search_finds_stations_and_places_without_diacritics(fm_app) -> None:
    def search(text):
        from core.text import fold

        return asyncio.run(search_stations(SearchQuery(text=text, folded=fold(text), locale="en", principal=None,
                                                       host=fm_app.state.host)))

    assert next(r.title for r in search("kim long")).startswith("Trạm thủy văn Kim Long")
    assert any("Trần Hưng Đạo" in r.title for r in search("tran hung dao"))
    by_place = search("dong ba")  # the market the hotspot stands at
    assert by_place and by_place[0].url.startswith("/m/floodmap/stations/")
    assert search("no such place at all") == []


def test_a_warning_its_notice_and_its_feed_item_are_stored_together_or_not_at_all(fm_app, fm_client,
                                                                                   monkeypatch) -> None:
    """One transaction: a notice that cannot be written leaves no warning and no feed item behind."""
    from sqlmodel import func, select

    from core.feed.models import FeedItem
    from miniapps.floodmap.models import FloodWarning
    from miniapps.floodmap.warnings import issue_automatic
    from push.models import Notification

    with Session(fm_app.state.engine) as db:
        thing_id = next(t.id for t in db.exec(select(FloodThing).order_by(FloodThing.id)) if t.warn_units)
    host = fm_app.state.host

    def counts() -> tuple[int, int, int]:
        with Session(fm_app.state.engine) as db:
            return tuple(db.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
                         for t in (FloodWarning, FeedItem, Notification))

    before = counts()
    with monkeypatch.context() as patched:
        def broken_send(*_args, **_kwargs):
            raise RuntimeError("notification store away")

        patched.setattr(fm_app.state.notifier, "send", broken_send)
        try:
            fm_client.portal.call(issue_automatic, host, thing_id, 3, 3.5)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failed notice did not fail the warning")
    assert counts() == before
    warning_id = fm_client.portal.call(issue_automatic, host, thing_id, 3, 3.5)
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    with Session(fm_app.state.engine) as db:
        assert db.get(FloodWarning, warning_id).notification_id is not None


def _broken_send(*_args, **_kwargs):
    raise RuntimeError("notification store away")


def test_an_operators_warning_is_never_stored_without_its_notice(fm_app, fm_client, monkeypatch) -> None:
    """A manual warning is one use case: when its notice cannot be written, the API answers 500 and no
    warning, notice or feed item is left behind; once the notice can be written, all three are stored."""
    from sqlmodel import func, select

    from core.feed.models import FeedItem
    from miniapps.floodmap.models import FloodWarning
    from push.models import Notification

    people = make_people(fm_app)

    def counts() -> tuple[int, int, int]:
        with Session(fm_app.state.engine) as db:
            return tuple(db.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
                         for t in (FloodWarning, FeedItem, Notification))

    before = counts()
    client = TestClient(fm_app, raise_server_exceptions=False)  # the 500 answered, not raised here
    with monkeypatch.context() as patched:
        patched.setattr(fm_app.state.notifier, "send", _broken_send)
        failed = client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.operator)
        assert failed.status_code == 500
    assert counts() == before
    issued = fm_client.post("/api/miniapps/floodmap/warnings", json=MANUAL, headers=people.operator)
    assert issued.status_code == 201, issued.text
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_a_return_to_normal_closes_the_event_only_with_its_note(fm_app, fm_client, monkeypatch) -> None:
    """The closing CAP message (level 0) and the residents' note are one transaction: a note that cannot be
    written leaves the event open (no closing message), and the minute job closes it later with both, once."""
    from sqlmodel import func, select

    from miniapps.floodmap.models import FloodWarning
    from miniapps.floodmap.warnings import announce_updates, open_event, settle_owed
    from push.models import Notification
    from tests.miniapps.floodmap.moves import record_move

    host = fm_app.state.host
    station = fm_app.state.test_stations[KIM_LONG]

    def change(from_level: int, to_level: int, value: float) -> list:
        return record_move(fm_app.state.engine, station, from_level, to_level, value)

    def closing_and_notes() -> tuple[int, int]:
        with Session(fm_app.state.engine) as db:
            closing = db.exec(select(func.count()).select_from(FloodWarning).where(
                FloodWarning.thing_id == station, FloodWarning.level == 0)).one()
            notes = db.exec(select(func.count()).select_from(Notification).where(
                Notification.topic == "flood_updates")).one()
            return closing, notes

    asyncio.run(announce_updates(host, change(0, 2, 2.6)))
    before = closing_and_notes()
    with monkeypatch.context() as patched:
        patched.setattr(fm_app.state.notifier, "send", _broken_send)
        try:
            asyncio.run(announce_updates(host, change(2, 0, 0.9)))
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failed note did not fail the return to normal")
    assert closing_and_notes() == before
    with Session(fm_app.state.engine) as db:
        assert open_event(db, station) is not None  # still open: the return to normal still owes its closing
    assert len(asyncio.run(settle_owed(host))) == 1
    assert closing_and_notes() == (before[0] + 1, before[1] + 1)
    with Session(fm_app.state.engine) as db:
        assert open_event(db, station) is None
    assert asyncio.run(settle_owed(host)) == []  # once
    assert closing_and_notes() == (before[0] + 1, before[1] + 1)
