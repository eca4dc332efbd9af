"""Development sign-in codes (issue 15): requests limited per phone and per address, a new code does not
reset the count of wrong guesses, and however many guesses race, none gets past the limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app
from core.db import make_engine
from core.identity import service
from core.identity.models import DevSignInCode
from tests.conftest import TEST_SECRET, base_settings


@pytest.fixture
def dev(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A development host (dev sign-in on) on SQLite, then PostgreSQL."""
    with TestClient(create_app(base_settings(database_url=database_url, env="dev",
                                             var_dir=tmp_path / "var"))) as client:
        yield client


def _code(engine, secret: str, phone: str) -> str:
    with Session(engine) as db:
        return service.start_dev_sign_in(db, secret=secret, phone=phone)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_codes_are_limited_per_phone_and_per_address(dev: TestClient) -> None:
    asked = [dev.post("/api/auth/dev/code", json={"phone": "0905 222 001"}) for _ in range(6)]
    assert [a.status_code for a in asked] == [202] * 5 + [429]
    refused = asked[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["field"] == "phone"
    # many phone numbers from one address: 20 requests an hour (5 used above)
    spread = [dev.post("/api/auth/dev/code", json={"phone": f"0905 223 {n:03d}"}).status_code for n in range(16)]
    assert spread == [202] * 15 + [429]
    elsewhere = TestClient(dev.app, client=("10.1.2.3", 5000))
    assert elsewhere.post("/api/auth/dev/code", json={"phone": "0905 224 000"}).status_code == 202


def test_a_new_code_does_not_reset_the_wrong_guesses(dev: TestClient) -> None:
    engine, secret = dev.app.state.engine, dev.app.state.settings.secret_key
    phone = "+84905222002"
    first = _code(engine, secret, phone)
    for _ in range(4):
        assert dev.post("/api/auth/dev/verify", json={"phone": phone, "code": _wrong(first)}).status_code == 401
    second = _code(engine, secret, phone)  # asking again keeps the four wrong guesses
    assert dev.post("/api/auth/dev/verify", json={"phone": phone, "code": _wrong(second)}).status_code == 401
    assert dev.post("/api/auth/dev/verify", json={"phone": phone, "code": second}).status_code == 401
    # and no new code until the last one expires
    again = dev.post("/api/auth/dev/code", json={"phone": phone})
    assert again.status_code == 429 and again.json()["field"] == "phone" and int(again.headers["retry-after"]) >= 1


def _race(guess, wrong_codes: list[str]) -> list[int]:
    barrier = threading.Barrier(len(wrong_codes))
    statuses: list[int] = []

    def one(code: str) -> None:
        barrier.wait()
        statuses.append(guess(code))

    threads = [threading.Thread(target=one, args=(code,)) for code in wrong_codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_parallel_wrong_guesses_on_a_served_app_never_let_the_right_code_through(served) -> None:
    """29 wrong guesses at once through uvicorn's thread pool, five trials: the right code is refused after them."""
    engine = served.engine()
    try:
        for trial in range(5):
            phone = f"+8490522{trial:04d}"
            code = _code(engine, TEST_SECRET, phone)
            wrongs = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 30)]
            with httpx.Client(base_url=served.url, timeout=60) as http:
                statuses = _race(lambda c, phone=phone: http.post("/api/auth/dev/verify",
                                                                 json={"phone": phone, "code": c}).status_code,
                                 wrongs)
                assert statuses == [401] * 29
                late = http.post("/api/auth/dev/verify", json={"phone": phone, "code": code})
            assert late.status_code == 401, f"trial {trial}: the right code got through after 29 wrong guesses"
            with Session(engine) as db:
                assert db.get(DevSignInCode, phone).attempts == service.DEV_CODE_ATTEMPTS
    finally:
        engine.dispose()


def test_concurrent_sessions_count_every_guess(database_url: str) -> None:
    """Guesses from concurrent database sessions (no HTTP in between): the count is exact, never lost."""
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    secret = TEST_SECRET
    try:
        for trial in range(3):
            phone = f"+8490523{trial:04d}"
            code = _code(engine, secret, phone)

            def guess(attempt: str, phone: str = phone) -> int:
                with Session(engine) as db:
                    try:
                        service.check_dev_code(db, secret=secret, phone=phone, code=attempt)
                        return 200
                    except service.IdentityError as exc:
                        return exc.status

            statuses = _race(guess, [_wrong(code)] * 12)
            assert statuses == [401] * 12
            with Session(engine) as db:
                assert db.get(DevSignInCode, phone).attempts == service.DEV_CODE_ATTEMPTS
            assert guess(code) == 401
    finally:
        engine.dispose()


def test_codes_asked_for_one_new_phone_at_once_are_one_code_and_clear_refusals(database_url: str) -> None:
    """Eight requests for a phone's first code at once: each gets a code or a 429, never a 500."""
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        def ask(_: str) -> int:
            with Session(engine) as db:
                try:
                    service.start_dev_sign_in(db, secret=TEST_SECRET, phone="+84905240000")
                    return 202
                except service.IdentityError as exc:
                    return exc.status
                except Exception:  # what the API would answer 500
                    return 500

        statuses = _race(ask, ["-"] * 8)
        assert len(statuses) == 8 and set(statuses) <= {202, 429} and 202 in statuses, statuses
        with Session(engine) as db:
            assert db.get(DevSignInCode, "+84905240000").attempts == 0
    finally:
        engine.dispose()
