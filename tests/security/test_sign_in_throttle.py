"""Officials' sign-in cannot be turned into a lock-out (issue 15): progressive delays per account and per
address answered 429 with Retry-After, a known device is never kept out by other clients' failures, the
right password works once the delay has passed, parallel guesses cannot outrun the count, and a sustained
attack is logged and told to operators once."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from core.app import create_app
from core.identity.ratelimit import SignInLimiter
from core.identity.service import create_official
from core.identity.tokens import device_cookie_name
from push.models import Notification
from tests.conftest import base_settings

PASSWORD = "Hue-2025-strong-pw"
WRONG = "Sai-mat-khau-2025"


class Clock:
    """A clock the test moves by hand, so no assertion depends on how fast this machine is."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: Clock, fast_hashes: None):
    """A host on SQLite, then PostgreSQL, whose sign-in limiter reads the test's clock."""
    application = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var"))
    application.state.sign_in_limiter = SignInLimiter(clock=clock, alert_failures=20)
    return application


@pytest.fixture
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id: these tests count sign-in attempts, not what a hash costs."""
    from argon2 import PasswordHasher

    from core.identity import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def owner(app) -> Iterator[TestClient]:
    """The official's own browser (its own cookie jar)."""
    with TestClient(app, client=("10.0.0.7", 50000)) as client:
        yield client


@pytest.fixture
def attacker(app, owner: TestClient) -> TestClient:
    """Another client on the same host, from the same address as the owner (one office, one NAT)."""
    return TestClient(app, client=("10.0.0.7", 50001))


def _official(app, username: str, role: str = "commune_official", unit: str = "phu-xuan") -> int:
    with Session(app.state.engine) as db:
        return create_official(db, username=username, display_name="Nguyễn Thị Lan", password=PASSWORD,
                               memberships=[(role, unit)]).id


def _login(client: TestClient, username: str, password: str):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def _throttled(answer) -> int:
    """Assert a 429 problem+json with Retry-After; return the seconds."""
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    seconds = int(answer.headers["retry-after"])
    assert seconds >= 1 and "try again in" in answer.json()["detail"]
    return seconds


def test_a_known_device_signs_in_while_others_hammer_the_account(app, owner, attacker) -> None:
    _official(app, "operator.x", "operator", "hue")
    assert _login(owner, "operator.x", PASSWORD).status_code == 200
    assert device_cookie_name("operator.x") in owner.cookies
    statuses = [_login(attacker, "operator.x", WRONG).status_code for _ in range(40)]
    assert statuses.count(401) == 5 and statuses.count(429) == 35  # five free failures, then delays
    assert _throttled(_login(attacker, "operator.x", PASSWORD)) > 0  # the attacker's client, even with the password
    mine = _login(owner, "operator.x", PASSWORD)
    assert mine.status_code == 200, mine.text
    # a device cookie of another account does not help
    forged = TestClient(app, client=("10.0.0.7", 50002),
                        cookies={device_cookie_name("admin.x"): owner.cookies[device_cookie_name("operator.x")]})
    _official(app, "admin.x", "admin", "hue")
    for _ in range(6):
        _login(attacker, "admin.x", WRONG)
    assert _login(forged, "admin.x", PASSWORD).status_code == 429


def test_the_right_password_works_once_the_delay_has_passed(app, attacker, clock: Clock) -> None:
    _official(app, "px.lan")
    for _ in range(5):
        assert _login(attacker, "px.lan", WRONG).status_code == 401
    seconds = _throttled(_login(attacker, "px.lan", PASSWORD))
    clock.now += seconds
    assert _login(attacker, "px.lan", PASSWORD).status_code == 200
    # a success clears the account's failures: the next mistake is free again
    assert _login(attacker, "px.lan", WRONG).status_code == 401


@pytest.fixture(params=["memory", "redis"])
def counts_in(request: pytest.FixtureRequest) -> str | None:
    """Where the limiter keeps its counts: this process, or Redis through its Lua script."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def test_delays_double_up_to_the_cap(app, attacker, clock: Clock, counts_in: str | None) -> None:
    _official(app, "px.tam")
    app.state.sign_in_limiter = SignInLimiter(counts_in, clock=clock, cap_seconds=60,
                                              key_prefix=f"t-{uuid.uuid4().hex[:10]}")
    waits = []
    for _ in range(5):
        assert _login(attacker, "px.tam", WRONG).status_code == 401
    for _ in range(10):
        seconds = _throttled(_login(attacker, "px.tam", WRONG))
        waits.append(seconds)
        clock.now += seconds
        assert _login(attacker, "px.tam", WRONG).status_code == 401  # the delay passed: one more guess
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert waits[6:] == [60, 60, 60, 60]


def test_one_address_guessing_many_accounts_is_slowed_down(app, clock: Clock) -> None:
    spray = TestClient(app, client=("10.9.9.9", 40000))
    other = TestClient(app, client=("10.0.0.8", 40000))
    _official(app, "kl.hoa")
    statuses = [_login(spray, f"name.{n}", WRONG).status_code for n in range(25)]
    assert statuses.count(401) == 20 and statuses.count(429) == 5
    assert "your network address" in spray.post("/api/auth/login", json={"username": "kl.hoa",
                                                                          "password": PASSWORD}).json()["detail"]
    assert _login(other, "kl.hoa", PASSWORD).status_code == 200  # another address is not slowed


def test_failures_drain_away_so_an_offices_typos_never_add_up(app, clock: Clock, counts_in: str | None) -> None:
    app.state.sign_in_limiter = limiter = SignInLimiter(counts_in, clock=clock, key_prefix=f"t-{uuid.uuid4().hex[:10]}")
    office = TestClient(app, client=("10.20.0.1", 40000))
    _official(app, "px.office")
    for n in range(60):  # 60 typos from one office over three hours, each on someone's own account
        assert _login(office, f"staff.{n}", WRONG).status_code == 401, n
        clock.now += limiter.address.leak
    assert _login(office, "px.office", PASSWORD).status_code == 200
    # the same failures at once from one address are slowed down after the free 20
    spray = TestClient(app, client=("10.20.0.2", 40000))
    assert [_login(spray, f"staff.{n}", WRONG).status_code for n in range(21)].count(429) == 1


def test_parallel_guesses_cannot_outrun_the_count(app, attacker) -> None:
    _official(app, "px.song")
    barrier = threading.Barrier(30)
    statuses: list[int] = []

    def guess() -> None:
        barrier.wait()
        statuses.append(_login(attacker, "px.song", WRONG).status_code)

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(401) == 5 and statuses.count(429) == 25  # the clock stood still: only the free five


def test_a_sustained_attack_is_logged_and_told_to_operators_once(app, attacker, clock: Clock, caplog) -> None:
    caplog.set_level(logging.WARNING)
    app.state.sign_in_limiter = SignInLimiter(clock=clock, alert_failures=8)
    _official(app, "op.city", "operator", "hue")
    for victim in ("px.one", "px.two"):
        _official(app, victim)
        for _ in range(10):
            answer = _login(attacker, victim, WRONG)
            if answer.status_code == 429:
                clock.now += int(answer.headers["retry-after"])
                assert _login(attacker, victim, WRONG).status_code == 401
    warnings = [r for r in caplog.records if "sustained sign-in failures" in r.getMessage()]
    assert any("account:px.one" in r.getMessage() for r in warnings)
    assert any("account:px.two" in r.getMessage() for r in warnings)
    with Session(app.state.engine) as db:
        notices = db.exec(select(func.count()).select_from(Notification).where(
            Notification.miniapp == "core", Notification.topic == "security")).one()
    assert notices == 1  # one notice per quarter hour for the city, however many accounts are attacked


def test_the_sign_in_page_answers_429_and_sets_the_device_cookie(app, owner, attacker) -> None:
    _official(app, "px.web")
    form = {"username": "px.web", "password": PASSWORD, "next": "/me"}
    assert owner.post("/auth/login", data=form, follow_redirects=False).status_code == 303
    assert device_cookie_name("px.web") in owner.cookies
    for _ in range(5):
        attacker.post("/auth/login", data={**form, "password": WRONG}, follow_redirects=False)
    refused = attacker.post("/auth/login", data=form, follow_redirects=False)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    owner.cookies.delete("superapp_session")
    assert owner.post("/auth/login", data=form, follow_redirects=False).status_code == 303


def test_workers_share_the_counts_through_redis(database_url: str, redis_url: str, tmp_path: Path,
                                                fast_hashes: None) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"  # this test's own keys in the shared Redis
    clock = Clock()
    settings = base_settings(database_url=database_url, redis_url=redis_url, var_dir=tmp_path / "var")
    one_app, two_app = create_app(settings), create_app(settings)
    for application in (one_app, two_app):
        application.state.sign_in_limiter = SignInLimiter(redis_url, key_prefix=prefix, clock=clock)
    with TestClient(one_app) as one, TestClient(two_app) as two:
        _official(one_app, "shared.px")
        assert _login(one, "shared.px", PASSWORD).status_code == 200  # `one` becomes a known device
        barrier = threading.Barrier(20)
        statuses: list[int] = []

        def guess(worker: TestClient) -> None:
            guest = TestClient(worker.app)  # no device cookie
            barrier.wait()
            statuses.append(_login(guest, "shared.px", WRONG).status_code)

        threads = [threading.Thread(target=guess, args=((one, two)[n % 2],)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses.count(401) == 5 and statuses.count(429) == 15
        assert _throttled(_login(TestClient(two_app), "shared.px", PASSWORD)) >= 1
        assert _login(one, "shared.px", PASSWORD).status_code == 200
