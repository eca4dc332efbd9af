"""The synthetic city generator: it fills SQLite and PostgreSQL with the expected rows and skew, reads
back through the product's inbox, and refuses production, impossible sizes, unknown parts and a second
run. Tiny scale (650 residents) keeps it fast; the skew and mixes are also checked at full size on the
pure functions, which touch no database."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import uuid
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bench.city import PartResult, generate, notifications, report
from bench.city.__main__ import main
from bench.city.base import City, CityError
from bench.city.notifications import (
    FLOOD,
    YEAR,
    Broadcast,
    Personal,
    _broadcasts,
    _timeline,
)
from bench.city.people import RESIDENTS, RESIDENTS_BY_UNIT_CODE, apportion
from core.db import make_engine
from core.identity.routes import NotificationPrefs
from push import inbox
from tests.conftest import PG_URL, require

SCALE = 0.0005
EXPECTED_RESIDENTS = round(RESIDENTS * SCALE)  # 650
EXPECTED_DEVICES = round(900_000 * SCALE)  # 450


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of this module's own (the generator migrates it), dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('city') / 'city.db'}"
        return
    require(bool(PG_URL), "PostgreSQL (SUPERAPP_TEST_DATABASE_URL)")
    assert PG_URL
    server = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"city_test_{uuid.uuid4().hex[:10]}"
    maintenance = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://", 1)
    with maintenance.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    maintenance.dispose()


@pytest.fixture(scope="module")
def loaded(empty_database: str) -> Iterator[tuple[City, list[PartResult]]]:
    """The people and notifications of a city at SCALE, loaded once per database."""
    city, results = generate(empty_database, scale=SCALE, parts="people,notifications", echo=lambda _: None)
    yield city, results
    city.engine.dispose()


def _rows(city: City, query: str) -> list:
    with city.engine.connect() as connection:
        return list(connection.execute(text(query)))


GENERATED_RESIDENTS = "FROM user_account WHERE kind = 'resident' AND firebase_uid LIKE 'synthetic-%'"


def test_people_fills_the_expected_rows(loaded) -> None:
    city, results = loaded
    people = next(r for r in results if r.name == "people")
    [(residents,)] = _rows(city, f"SELECT COUNT(*) {GENERATED_RESIDENTS}")
    [(devices,)] = _rows(city, "SELECT COUNT(*) FROM device")
    assert residents == EXPECTED_RESIDENTS
    assert devices == people.rows["device"] == EXPECTED_DEVICES
    # Several residents with two devices, many with none.
    per_resident = dict(_rows(city, "SELECT user_id, COUNT(*) FROM device GROUP BY user_id"))
    assert max(per_resident.values()) == 2
    assert 0.2 * residents < residents - len(per_resident) < 0.6 * residents
    # About 10% follow one or two units other than their home.
    follows = _rows(city, "SELECT f.user_id, f.unit_id, u.home_unit_id FROM unit_follow f "
                          "JOIN user_account u ON u.id = f.user_id")
    followers = {user for user, _, _ in follows}
    assert 0.05 * residents < len(followers) < 0.15 * residents
    assert all(unit != home for _, unit, home in follows)
    # Officials: every commune and ward, every department, and operators hold a membership.
    roles = dict(_rows(city, "SELECT m.role, COUNT(DISTINCT m.unit_id) FROM membership m "
                             "JOIN user_account u ON u.id = m.user_id WHERE u.username LIKE 'synthetic.%' "
                             "GROUP BY m.role"))
    assert roles == {"commune_official": 40, "department_official": 10, "operator": 1}


def test_residents_follow_the_city_skew(loaded) -> None:
    city, _ = loaded
    counts = dict(_rows(city, "SELECT o.code, COUNT(*) FROM user_account u JOIN org_unit o ON o.id = u.home_unit_id "
                              "WHERE u.kind = 'resident' AND u.firebase_uid LIKE 'synthetic-%' GROUP BY o.code"))
    assert sum(counts.values()) == EXPECTED_RESIDENTS
    assert set(counts) == set(RESIDENTS_BY_UNIT_CODE)
    largest = max(RESIDENTS_BY_UNIT_CODE, key=RESIDENTS_BY_UNIT_CODE.get)
    assert counts[largest] == max(counts.values())
    assert counts[largest] > 5 * min(counts.values())


def test_full_size_split_has_wards_over_100000_and_sums_exactly() -> None:
    shares = apportion(RESIDENTS_BY_UNIT_CODE, RESIDENTS)
    assert sum(shares.values()) == RESIDENTS
    assert max(shares.values()) == 104_000
    assert sum(1 for count in shares.values() if count > 100_000) >= 4
    assert min(shares.values()) >= 8_000
    odd = apportion(RESIDENTS_BY_UNIT_CODE, 1_234_567)
    assert sum(odd.values()) == 1_234_567


def test_residents_look_like_residents(loaded) -> None:
    city, _ = loaded
    rows = _rows(city, f"SELECT phone, display_name, locale, notification_prefs, created_at, home_unit_since "
                       f"{GENERATED_RESIDENTS}")
    phones = [phone for phone, *_ in rows]
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(r"\+8490\d{7}", phone) for phone in phones)
    assert all(name.startswith("[synthetic] ") for _, name, *_ in rows)
    assert {locale for _, _, locale, *_ in rows} >= {"vi", "en"}
    # Every stored preference is one the profile API would accept.
    prefs = [NotificationPrefs.model_validate(json.loads(p) if isinstance(p, str) else p) for _, _, _, p, _, _ in rows]
    assert sum(1 for p in prefs if p.quiet_hours) > 0
    assert sum(1 for p in prefs if p.muted) > 0
    assert sum(1 for p in prefs if not p.quiet_hours and not p.muted) > 0.7 * len(prefs)
    # home_unit_since is filled with the sign-up moment where the column exists.
    assert all(since is not None and str(since)[:19] == str(created)[:19] for *_, created, since in rows)
    years = {str(created)[:4] for *_, created, _ in rows}
    assert len(years) >= 3


def test_devices_carry_fcm_shaped_unique_tokens(loaded) -> None:
    city, _ = loaded
    rows = _rows(city, "SELECT token, platform, active FROM device")
    tokens = [token for token, _, _ in rows]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}:APA91b[A-Za-z0-9_-]{128}", token) for token in tokens)
    assert {platform for _, platform, _ in rows} == {"android", "ios"}
    assert 0.8 < sum(1 for *_, active in rows if active) / len(rows) < 1


def test_notifications_broadcasts_and_personal_notices(loaded) -> None:
    city, results = loaded
    written = next(r for r in results if r.name == "notifications").rows
    broadcasts = city.size(2 * 2_450)
    assert written["notification"] == broadcasts + written["inbox_item"]
    audiences = dict(_rows(city, "SELECT notification_id, COUNT(*) FROM notification_audience GROUP BY 1"))
    assert len(audiences) == broadcasts
    assert all(1 <= count <= 15 for count in audiences.values())
    # Ids follow time, as the notifier writes them.
    times = [created for _, created in _rows(city, "SELECT id, created_at FROM notification ORDER BY id")]
    assert times == sorted(times)
    # Personal notices go to residents after they joined; each is its own notification.
    late = _rows(city, "SELECT COUNT(*) FROM inbox_item i JOIN user_account u ON u.id = i.user_id "
                       "WHERE i.created_at < u.created_at OR u.kind <> 'resident' OR NOT i.personal")
    assert late == [(0,)]
    assert written["inbox_item"] > 0.5 * 0.2 * EXPECTED_RESIDENTS


def test_the_products_inbox_reads_the_generated_history(loaded) -> None:
    city, _ = loaded
    [(user_id,)] = _rows(city, "SELECT user_id FROM inbox_item GROUP BY user_id ORDER BY COUNT(*) DESC, user_id "
                               "LIMIT 1")
    [(personal,)] = _rows(city, f"SELECT COUNT(*) FROM inbox_item WHERE user_id = {user_id}")
    with Session(city.engine) as db:
        entries, _ = inbox.page(db, user_id, limit=100)
    ids = [entry.notification.id for entry in entries]
    assert ids == sorted(ids, reverse=True)
    assert sum(1 for entry in entries if entry.notification.target.get("users") == 1) == personal


def test_the_report_lists_every_table_written(loaded) -> None:
    city, results = loaded
    lines = report(city, results)
    for table in ("user_account", "device", "unit_follow", "membership", "notification",
                  "notification_audience", "inbox_item", "inbox_state"):
        [line] = [line for line in lines if f" {table} " in line]
        size = line.split()[-2]
        assert (size != "-") == city.postgres


def test_a_second_run_is_refused(loaded) -> None:
    city, _ = loaded
    with pytest.raises(CityError, match="already holds generated residents.*empty database"):
        generate(city.url, scale=SCALE, parts="people", echo=lambda _: None)
    [(residents,)] = _rows(city, f"SELECT COUNT(*) {GENERATED_RESIDENTS}")
    assert residents == EXPECTED_RESIDENTS
    with pytest.raises(CityError, match="already holds the synthetic notification history"):
        notifications.load(city)


def test_a_part_not_written_yet_is_reported_as_skipped(loaded, monkeypatch) -> None:
    city, _ = loaded
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "bench.city.feed" else real_find_spec(name, *args))
    lines: list[str] = []
    again, results = generate(city.url, scale=SCALE, parts="feed", echo=lines.append)
    again.engine.dispose()
    assert [(r.name, r.skipped, r.rows) for r in results] == [("feed", "module not written yet", {})]
    assert "feed: skipped (bench/city/feed.py does not exist)" in lines
    assert "(skipped: module not written yet)" in report(city, results)[1]


@pytest.mark.parametrize("arguments, message", [
    (["--scale", "0"], "--scale: 0 is outside"),
    (["--scale", "-1"], "--scale: -1 is outside"),
    (["--scale", "3.5"], "--scale: 3.5 is outside"),
    (["--scale", "nan"], "--scale: nan is outside"),
    (["--scale", "huge"], "--scale: 'huge' is not a number"),
    (["--parts", "people,weather"], "unknown part(s) weather"),
])
def test_impossible_requests_are_refused_in_one_line(arguments, message, tmp_path, capsys) -> None:
    database = tmp_path / "city.db"
    assert main(["--url", f"sqlite:///{database}", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not database.exists()


def test_production_is_refused(empty_database, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SUPERAPP_ENV", "production")
    assert main(["--url", empty_database, "--scale", str(SCALE)]) == 2
    assert "refusing to generate a synthetic city with SUPERAPP_ENV=production" in capsys.readouterr().err


def test_broadcasts_at_full_size_mix_severities_and_units() -> None:
    city = City("sqlite://", scale=1.0)
    units = [f"unit-{n}" for n in range(40)]
    end = city.now.timestamp()
    made = _broadcasts(city, units, end - 2 * YEAR, end)
    assert len(made) == 4_900
    severities = [b.kind.severity for b in made]
    shares = {s: severities.count(s) / len(made) for s in ("info", "warning", "critical")}
    assert shares["warning"] > 0.5 and 0.05 < shares["critical"] < 0.2 and 0.1 < shares["info"] < 0.4
    assert all(1 <= len(b.audiences()) <= 15 for b in made)
    assert any(b.city for b in made) and any(b.roles for b in made)
    floods = [datetime.fromtimestamp(b.at, UTC).month for b in made if b.kind.miniapp == "floodmap"]
    assert sum(1 for month in floods if month >= 9) > 0.6 * len(floods)


def test_personal_notices_arrive_at_the_asked_rate_in_time_order() -> None:
    start, end = 0.0, 2 * YEAR
    starts = [start] * 500 + [YEAR] * 500  # half can receive notices for two years, half for one
    events = list(_timeline(random.Random(7), [Broadcast(YEAR / 2, FLOOD[0], ("unit-1",))], array("q", range(1000)),
                            array("d", starts), start, end))
    personal = [e for e in events if isinstance(e, Personal)]
    expected = 2.0 * (500 * 2 + 500 * 1)  # PERSONAL_PER_YEAR x recipient-years
    assert abs(len(personal) - expected) < 0.1 * expected
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.at >= YEAR for e in personal if e.user_id >= 500)
    assert sum(1 for e in events if isinstance(e, Broadcast)) == 1
