"""The ranking cache: a write shows on the next view, one computation per key, stale values served only
while a refresh runs and never after a write."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from miniapps.tasks import cache, evaluation
from tests.miniapps.tasks.conftest import TASKS, assignment_id, make_report, make_task


def test_a_write_shows_on_the_next_ranking_page_and_api_view(api: TestClient, engine, operator) -> None:
    start = datetime(2025, 5, 1, 2, tzinfo=UTC)
    task = make_task(engine, units=("phu-xuan",), now=start, deadline=datetime(2025, 5, 20, tzinfo=UTC))
    page = "/m/tasks/rankings?period=2025-05&lang=en"
    for _ in range(2):  # the second view is served from the cache
        before = api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-05"}).json()
        html = api.get(page, headers=operator).text
    assert {r["unit_id"]: r for r in before["rows"]}["phu-xuan"]["overdue"] == 1
    assert '<tr data-unit="phu-xuan"><td>1</td>' in html and "<td>0.0</td><td>0/1</td>" in html

    report = make_report(engine, assignment_id(engine, task, "phu-xuan"), "phu-xuan", percent=100, complete=True,
                         now=datetime(2025, 5, 10, tzinfo=UTC))
    assert api.post(f"{TASKS}/reports/{report}/accept", headers=operator).status_code == 200

    after = api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-05"}).json()
    row = {r["unit_id"]: r for r in after["rows"]}["phu-xuan"]
    assert (row["on_time"], row["overdue"], row["score"]) == (1, 0, 100.0)
    assert row["unit_name"] == {"vi": "Phường Phú Xuân", "en": "Ward Phu Xuan"}
    html = api.get(page, headers=operator).text
    assert "<td>100.0</td><td>1/1</td>" in html


def test_the_api_leaves_the_shared_rankings_as_computed(api: TestClient, engine, operator) -> None:
    assert api.get(f"{TASKS}/rankings", headers=operator, params={"period": "2025-06"}).status_code == 200
    with Session(engine) as db:
        shared = evaluation.rankings(db, ["2025-06"], kept=cache.rankings_cache(api.app.state.host))["2025-06"]
    assert shared["rows"] and all("unit_name" not in row for row in shared["rows"])


def _blocked(value: Any, started: threading.Event, release: threading.Event, calls: list[Any]):
    def compute() -> Any:
        calls.append(value)
        started.set()
        release.wait()
        return value
    return compute


def test_one_computation_for_many_callers() -> None:
    kept, calls, results = cache.Rankings(), [], []
    started, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: results.append(
        kept.cached("k", _blocked("v", started, release, calls))))
    leader.start()
    started.wait()
    followers = [threading.Thread(target=lambda: results.append(kept.cached("k", lambda: calls.append("x"))))
                 for _ in range(8)]
    for thread in followers:
        thread.start()
    assert kept.peek("k") is cache.MISSING  # nothing to serve yet: callers wait
    release.set()
    for thread in [leader, *followers]:
        thread.join()
    assert calls == ["v"] and results == ["v"] * 9


def test_an_aged_value_is_served_while_it_is_refreshed_but_never_after_a_write(monkeypatch) -> None:
    monkeypatch.setattr(cache, "TTL_SECONDS", -1.0)  # every entry is aged at once
    kept, calls = cache.Rankings(), []
    assert kept.cached("k", lambda: "old") == "old"
    assert kept.peek("k") is cache.MISSING  # aged, and nobody refreshing it
    started, release = threading.Event(), threading.Event()
    refreshed: list[Any] = []
    refresher = threading.Thread(target=lambda: refreshed.append(
        kept.cached("k", _blocked("new", started, release, calls))))
    refresher.start()
    started.wait()
    assert kept.peek("k") == "old"
    assert kept.cached("k", lambda: calls.append("again")) == "old"  # no wait, no second computation
    release.set()
    refresher.join()
    assert refreshed == ["new"] and calls == ["new"]

    started, release = threading.Event(), threading.Event()
    refresher = threading.Thread(target=lambda: kept.cached("k", _blocked("newer", started, release, calls)))
    refresher.start()
    started.wait()
    kept.forget()  # a write: what was computed before it is never served again
    assert kept.peek("k") is cache.MISSING
    assert kept.cached("k", lambda: "after the write") == "after the write"
    release.set()
    refresher.join()


def test_a_failed_computation_fails_its_waiters_and_is_tried_again() -> None:
    kept = cache.Rankings()
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def failing() -> Any:
        started.set()
        release.wait()
        raise RuntimeError("database gone")

    def call(compute) -> None:
        try:
            kept.cached("k", compute)
        except RuntimeError as exc:
            errors.append(exc)

    leader = threading.Thread(target=call, args=(failing,))
    leader.start()
    started.wait()
    follower = threading.Thread(target=call, args=(lambda: "computed by the follower",))
    follower.start()
    release.set()
    leader.join()
    follower.join()
    # the follower either waited on the failed computation or came after it and computed its own value
    assert 1 <= len(errors) <= 2
    assert kept.cached("k", lambda: "fine") in ("fine", "computed by the follower")


@pytest.mark.parametrize("period", ["2025-13", "x"])
def test_a_bad_month_is_refused_on_the_page_and_the_api(api: TestClient, operator, period: str) -> None:
    assert api.get("/m/tasks/rankings", headers=operator, params={"period": period}).status_code == 422
    assert api.get(f"{TASKS}/rankings", headers=operator, params={"period": period}).status_code == 422
