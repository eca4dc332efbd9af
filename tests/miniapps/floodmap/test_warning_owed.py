"""A level change and what it owes residents never part: the ingest commits the level with its level-change
row, and whatever fails afterwards (the warning's own transaction, the process), the minute job issues the
warning (or the closing of the event) from that row, once, however many workers try. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from core.app import create_app
from core.feed.models import FeedItem
from miniapps.floodmap.models import FloodThing, FloodWarning
from miniapps.floodmap.warnings import OWED_PREFIX, issue_automatic, settle_owed, settle_station
from push.models import Notification
from tests.conftest import base_settings
from tests.miniapps.floodmap.conftest import KIM_LONG, make_people, push, readings
from tests.miniapps.floodmap.moves import record_move


def _counts(engine) -> tuple[int, int, int]:
    with Session(engine) as db:
        return tuple(
            db.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
            for t in (FloodWarning, Notification, FeedItem)
        )


def _broken_send(*_args, **_kwargs):
    raise RuntimeError("notification store away")


def test_a_rise_whose_warning_failed_after_the_level_commit_is_still_warned_once(
    fm_app, fm_client, monkeypatch
) -> None:
    host, engine = fm_app.state.host, fm_app.state.engine
    people = make_people(fm_app)
    station = fm_app.state.test_stations[KIM_LONG]
    before = _counts(engine)
    sensor = TestClient(fm_app, raise_server_exceptions=False)  # whatever the request answers, the reading is in
    with monkeypatch.context() as patched:
        patched.setattr(fm_app.state.notifier, "send", _broken_send)  # the warning's transaction fails
        for reading in readings(0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.1, every=timedelta(minutes=2)):
            push(sensor, KIM_LONG, reading)
    with Session(engine) as db:
        assert db.get(FloodThing, station).level == 2  # the level change was committed ...
    assert _counts(engine) == before  # ... and its warning was not

    issued = fm_client.portal.call(settle_owed, host)  # the minute job, on any worker
    assert len(issued) == 1
    assert _counts(engine) == (before[0] + 1, before[1] + 1, before[2] + 1)  # warning, notice, feed item
    with Session(engine) as db:
        warning = db.get(FloodWarning, issued[0])
        assert (warning.level, warning.severity, warning.thing_id) == (2, "critical", station)
        assert warning.identifier.startswith(OWED_PREFIX)
    inbox = fm_client.get("/api/inbox", headers=people.kim_long).json()["items"]
    assert [i["url"] for i in inbox] == [f"/m/floodmap/warnings/{issued[0]}"]

    # run again (the next minute, another worker, after a restart): nothing more is sent
    assert fm_client.portal.call(settle_owed, host) == []
    assert fm_client.portal.call(settle_station, host, station) is None
    assert _counts(engine) == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_the_immediate_path_and_the_job_issue_a_rise_once(fm_app, fm_client) -> None:
    host, engine = fm_app.state.host, fm_app.state.engine
    station = fm_app.state.test_stations[KIM_LONG]
    before = _counts(engine)
    assert push(fm_client, KIM_LONG, readings(1.4, 1.6, 1.8, 2.0, 2.1, every=timedelta(minutes=2))).status_code == 200
    assert _counts(engine) == (before[0] + 1, before[1] + 1, before[2] + 1)  # the ingest's own path warned
    assert fm_client.portal.call(settle_owed, host) == []  # and the job finds nothing owed
    assert fm_client.portal.call(settle_station, host, station) is None
    assert _counts(engine) == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_two_workers_settling_the_same_level_change_issue_one_warning(fm_app, database_url, tmp_path) -> None:
    """Two hosts on one database (two web workers) settle the same rise at the same moment: one warning."""
    other = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "other"))
    station = fm_app.state.test_stations[KIM_LONG]
    record_move(fm_app.state.engine, station, 0, 3, 3.6)
    before = _counts(fm_app.state.engine)
    start = Barrier(2)

    def settle(host) -> int | None:
        start.wait()
        return asyncio.run(settle_station(host, station))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(settle, [fm_app.state.host, other.state.host]))
    issued = [r for r in results if r is not None]
    assert len(issued) == 1, results
    assert _counts(fm_app.state.engine) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert asyncio.run(settle_owed(other.state.host)) == []
    other.state.engine.dispose()


def test_a_rise_warned_before_the_keyed_messages_is_not_warned_again(fm_app) -> None:
    """A warning issued the old way (a random identifier, after the rise's reading) answered that rise: the
    job, on its first run after the upgrade, sends nothing for it."""
    host, engine = fm_app.state.host, fm_app.state.engine
    station = fm_app.state.test_stations[KIM_LONG]
    record_move(engine, station, 0, 2, 2.6)
    assert asyncio.run(issue_automatic(host, station, 2, 2.6)) is not None
    before = _counts(engine)
    assert asyncio.run(settle_owed(host)) == []
    assert _counts(engine) == before


def test_a_warning_never_follows_a_return_to_normal(fm_app) -> None:
    """A rise whose warning was lost, then the water fell back: nothing is owed (no late warning, no closing
    of an event nobody heard of)."""
    host, engine = fm_app.state.host, fm_app.state.engine
    station = fm_app.state.test_stations[KIM_LONG]
    record_move(engine, station, 0, 2, 2.6)
    record_move(engine, station, 2, 0, 0.9)
    before = _counts(engine)
    assert asyncio.run(settle_owed(host)) == []
    assert _counts(engine) == before
