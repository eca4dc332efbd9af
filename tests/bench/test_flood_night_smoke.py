"""A tiny flood night: ``bench.bench_flood_night`` measures on a small city (counts asserted, no timings).

30 WebSocket clients on two web processes, a push worker and the fake FCM, on PostgreSQL and Redis:
every round's warning must reach every client and the fake FCM must get one topic message per
flooded unit. Skipped without PostgreSQL and Redis (SUPERAPP_TEST_DATABASE_URL, SUPERAPP_TEST_REDIS_URL).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import bench_flood_night
from core.db import make_engine
from tests.conftest import PG_URL, REDIS_URL, require

CLIENTS = 30
ROUND = re.compile(r"^(warm-up|loaded|quiet) round \d+: post \d+ ms, last WebSocket \d+ ms \((\d+)/(\d+)\), "
                   r"last FCM topic \d+ ms \((\d+)/15\)$", re.MULTILINE)
HUB_ROUND = re.compile(r"^hub round \d+: last WebSocket \d+ ms \((\d+)/(\d+)\)$", re.MULTILINE)


def _server() -> object:
    assert PG_URL
    return make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))


def _databases(prefix: str) -> set[str]:
    maintenance = make_engine(_server().set(database="postgres").render_as_string(hide_password=False))
    try:
        with maintenance.connect() as connection:
            return set(connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                          {"p": f"{prefix}%"}).scalars())
    finally:
        maintenance.dispose()


@pytest.fixture
def city_url() -> Iterator[str]:
    """The URL of a city database the benchmark generates (scale 0.005), dropped afterwards with its copy."""
    require(bool(PG_URL) and bool(REDIS_URL), "PostgreSQL and Redis (SUPERAPP_TEST_DATABASE_URL, SUPERAPP_TEST_REDIS_URL)")
    name = f"superapp_night_{uuid.uuid4().hex[:8]}"
    url = _server().set(database=name).render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://", 1)
    try:
        yield url
    finally:
        maintenance = make_engine(_server().set(database="postgres").render_as_string(hide_password=False),
                                  isolation_level="AUTOCOMMIT")
        with maintenance.connect() as connection:
            for database in (name, f"{name}_run"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        maintenance.dispose()


def test_a_small_night_delivers_every_warning_to_every_client_and_each_unit_topic_once(
        city_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert REDIS_URL
    code = bench_flood_night.main([
        "--city", city_url, "--scale", "0.005", "--redis", REDIS_URL, "--clients", str(CLIENTS),
        "--client-procs", "2", "--rounds", "2", "--quiet-rounds", "1", "--round-every", "3",
        "--report-every", "3", "--concurrency", "1", "--warmup", "1", "--timeout", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    rounds = ROUND.findall(out)
    assert [kind for kind, *_ in rounds] == ["warm-up", "loaded", "loaded", "quiet"], out
    for _kind, delivered, clients, topics in rounds:
        assert (int(delivered), int(clients), int(topics)) == (CLIENTS, CLIENTS, 15), out
    assert [tuple(map(int, counts)) for counts in HUB_ROUND.findall(out)] == [(CLIENTS, CLIENTS)], out
    # Every client got every warning (above), and nothing went wrong: no client got an event twice either.
    # (The duplicates once seen here were another deployment's events on the same Redis database, a
    # second night running beside this one; the broker now names its channels after the deployment.)
    problems = re.findall(r"^errors: (\d+) (?:PASS|FAIL) \(target 0\)$\n((?:  .*\n?)*)", out, re.MULTILINE)
    assert len(problems) == 1, out
    assert [line for line in problems[0][1].splitlines() if line.strip()] == [], out
    # Three load targets reported, each with requests answered 200 and none refused.
    load_rows = re.findall(r"^(feed|inbox|map layer)\s+[\d.]+.*\s(\d+)\s+\{'200': (\d+)\}$", out, re.MULTILINE)
    assert [(label, int(errors)) for label, errors, _ok in load_rows] == [("feed", 0), ("inbox", 0), ("map layer", 0)]
    assert all(int(ok) > 0 for *_rest, ok in load_rows)
    # The run's copy of the city is dropped; the generated city stays for the next run.
    name = make_url(city_url).database
    assert _databases(name) == {name}
