"""What keeps feedback fast at city size: keyset queue pages, answers cached per data version (and dropped
when a report changes), the dashboard's overdue and handling-time figures, the streamed reports export,
and the synthetic city's reports as the product would have written them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from bench.city.base import City
from bench.city.feedback import load
from core.identity.models import User, UserKind
from core.units import places
from miniapps.feedback import cache, stats
from miniapps.feedback.models import FeedbackReport
from tests.core.identity.conftest import Persona
from tests.miniapps.feedback.conftest import KIM_LONG, act, file_report, jpeg

API = "/api/miniapps/feedback"


def test_queue_pages_by_key_without_gaps_or_repeats(api: TestClient, filed, commune_px: Persona) -> None:
    ids = [filed()["id"] for _ in range(5)]
    first = api.get(f"{API}/queue", headers=commune_px, params={"per_page": 2}).json()
    assert [r["id"] for r in first["items"]] == ids[::-1][:2] and first["next_before"] == ids[3]
    second = api.get(f"{API}/queue", headers=commune_px, params={"per_page": 2, "before": first["next_before"]}).json()
    third = api.get(f"{API}/queue", headers=commune_px, params={"per_page": 2, "before": second["next_before"]}).json()
    assert [r["id"] for r in second["items"]] == [ids[2], ids[1]] and second["page"] is None
    assert [r["id"] for r in third["items"]] == [ids[0]] and third["next_before"] is None
    assert third["total"] == 5  # the total counts the whole filtered queue, not what is left
    bad = api.get(f"{API}/queue", headers=commune_px, params={"before": 0})
    assert bad.status_code == 422 and "before" in bad.text


def test_cached_answers_change_as_soon_as_a_report_does(api: TestClient, filed, commune_px: Persona,
                                                       operator: Persona) -> None:
    report = filed()
    layer = api.get(f"{API}/reports.geojson").json()
    queue = api.get(f"{API}/queue", headers=commune_px).json()
    assert [f["id"] for f in layer["features"]] == [report["id"]] and queue["items"][0]["state"] == "submitted"
    act(api, commune_px, report["id"], "reject", reason="Spam")
    assert api.get(f"{API}/reports.geojson").json()["features"] == []
    assert api.get(f"{API}/queue", headers=commune_px).json()["items"][0]["state"] == "rejected"
    assert api.get("/open311/v2/requests.json").json() == []
    newer = filed(point=KIM_LONG, category="trees")
    assert [f["id"] for f in api.get(f"{API}/reports.geojson").json()["features"]] == [newer["id"]]
    board = api.get(f"{API}/dashboard", headers=operator).json()
    assert board["total"]["received"] == 2


def test_a_cached_queue_is_never_served_to_another_unit(api: TestClient, filed, commune_px: Persona,
                                                        commune_kl: Persona) -> None:
    ours = filed()
    assert [r["id"] for r in api.get(f"{API}/queue", headers=commune_px).json()["items"]] == [ours["id"]]
    assert api.get(f"{API}/queue", headers=commune_kl).json()["items"] == []


def test_answer_cache_is_bounded_in_bytes(api: TestClient) -> None:
    answers = cache.AnswerCache(max_bytes=1000)
    with Session(api.app.state.engine) as db:
        for n in range(10):
            assert answers.answer(db, ("layer", n), lambda n=n: bytes([n]) * 300) == bytes([n]) * 300
        kept = sum(answers.answer(db, ("layer", n), lambda: b"rendered again") != b"rendered again"
                   for n in range(10))
        assert kept <= 3  # 1000 bytes hold three answers of 300
        assert answers.answer(db, "too big", lambda: b"x" * 2000) == b"x" * 2000  # served, never stored


def test_map_layer_is_sent_gzipped_or_not_at_all_when_the_client_holds_it(api: TestClient, filed) -> None:
    report = filed()
    plain = api.get(f"{API}/reports.geojson", headers={"Accept-Encoding": "identity"})
    assert plain.headers.get("content-encoding") is None and "Accept-Encoding" in plain.headers["vary"]
    packed = api.get(f"{API}/reports.geojson", headers={"Accept-Encoding": "gzip"})
    # each representation has its own ETag (RFC 9110 8.8.3): the gzip bytes are not the identity bytes
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    assert packed.json() == plain.json()  # the client decoded the gzip into the same layer
    held = api.get(f"{API}/reports.geojson", headers={"If-None-Match": plain.headers["etag"]})
    assert held.status_code == 304 and held.content == b""
    newer = filed(point=KIM_LONG, category="trees")
    changed = api.get(f"{API}/reports.geojson", headers={"If-None-Match": plain.headers["etag"]})
    assert changed.status_code == 200 and [f["id"] for f in changed.json()["features"]] == [newer["id"], report["id"]]


def test_a_kept_layer_is_answered_before_routing_exactly_as_the_route_answers(api: TestClient, filed,
                                                                             monkeypatch) -> None:
    report = filed()
    # One cache the test owns: the host's forgets its version on any commit in the process, and the
    # PostgreSQL variant's background work commits whenever it likes.
    kept = cache.AnswerCache(version_seconds=3600)
    monkeypatch.setattr(cache, "answer_cache", lambda host: kept)
    assert api.get(f"{API}/reports.geojson").status_code == 200  # the route renders and keeps the layer
    routed = []
    fresh = cache.AnswerCache.fresh
    monkeypatch.setattr(cache.AnswerCache, "fresh", lambda self, key: routed.append(key) or fresh(self, key))

    def both(query: str, headers: dict[str, str]) -> tuple:
        early = api.get(f"{API}/reports.geojson{query}", headers=headers)
        # An unknown parameter makes the shortcut step aside; the route ignores it.
        late = api.get(f"{API}/reports.geojson{query}{'&' if query else '?'}via=route", headers=headers)
        return early, late

    for headers in ({"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity"}):
        before = len(routed)
        early, late = both("", headers)
        assert len(routed) == before + 1  # only the second went through the route
        assert (early.status_code, early.content) == (late.status_code, late.content)
        for name in ("content-type", "content-encoding", "etag", "vary", "cache-control", "x-content-type-options"):
            assert early.headers.get(name) == late.headers.get(name), name
    etag = early.headers["etag"]
    held, _ = both("", {"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert held.status_code == 304
    head = api.head(f"{API}/reports.geojson")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"]
    assert [f["id"] for f in api.get(f"{API}/reports.geojson").json()["features"]] == [report["id"]]
    # Bad input is the route's to refuse, with its problem details naming the field.
    bad = api.get(f"{API}/reports.geojson", params={"bbox": "1,2"})
    assert bad.status_code == 422 and "bbox" in bad.text
    assert api.get(f"{API}/reports.geojson", params={"limit": "0"}).status_code == 422
    # Once the version read is no longer trusted the route reads it again: nothing older is served.
    before = len(routed)
    kept._version_read -= 7200
    assert api.get(f"{API}/reports.geojson").status_code == 200 and len(routed) == before + 1


def test_a_lapsed_version_is_read_again_by_one_caller_while_the_others_are_served(api: TestClient) -> None:
    answers = cache.AnswerCache(version_seconds=60.0)
    with Session(api.app.state.engine) as db:
        assert answers.answer(db, "layer", lambda: b"rendered") == b"rendered"
    assert answers.fresh("layer") == b"rendered"
    answers._version_read -= 120  # the version read a while ago is no longer trusted
    assert answers.fresh("layer") is None  # the first caller after the lapse reads it again,
    assert answers.fresh("layer") == b"rendered"  # while the callers after it are served the stored answer
    answers.forget_version()  # until this process commits: then nobody is served the old answer
    assert answers.fresh("layer") is None and answers.fresh("layer") is None


def test_dashboard_counts_overdue_and_handling_hours(api: TestClient, filed, commune_px: Persona,
                                                     operator: Persona) -> None:
    late, handled = filed(), filed()
    act(api, commune_px, handled["id"], "accept")
    act(api, commune_px, handled["id"], "resolve", response="Xong")
    with Session(api.app.state.engine) as db:
        row = db.get(FeedbackReport, late["id"])
        row.due_at = datetime.now(UTC) - timedelta(hours=1)
        done = db.get(FeedbackReport, handled["id"])
        done.processed_at = done.created_at + timedelta(hours=6)
        db.add_all([row, done])
        db.commit()
    cache.answer_cache(api.app.state.host).clear()  # the test changed rows behind the service's back
    board = api.get(f"{API}/dashboard", headers=operator).json()
    assert board["total"]["overdue"] == 1 and board["total"]["processed"] == 1
    assert abs(board["total"]["average_processing_hours"] - 6.0) < 0.01
    lines = list(csv.reader(io.StringIO(api.get(f"{API}/dashboard.csv?headers=keys", headers=operator).content.decode("utf-8-sig"))))
    city = dict(zip(lines[0], lines[1], strict=True))
    assert city["overdue"] == "1" and float(city["average_processing_hours"]) == 6.0


def test_reports_export_streams_every_report_to_operators_only(api: TestClient, filed, commune_px: Persona,
                                                               operator: Persona, monkeypatch) -> None:
    monkeypatch.setattr(stats, "EXPORT_BATCH", 2)  # several fetches from the cursor
    ids = [filed(description=f"Ổ gà số {n}")["id"] for n in range(5)]
    answer = api.get(f"{API}/reports.csv", headers=operator, params={"headers": "keys"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "content-length" not in answer.headers  # streamed, not built first
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == ids and rows[4]["description"] == "Ổ gà số 4"
    assert set(rows[0]) == set(stats.REPORT_HEADERS) and "reporter" not in answer.text
    window = api.get(f"{API}/reports.csv", headers=operator, params={"since": "2000-01-01T00:00:00Z",
                                                                     "until": "2000-01-02T00:00:00Z", "headers": "keys"})
    assert window.content.decode("utf-8-sig").splitlines() == [",".join(stats.REPORT_HEADERS)]
    assert api.get(f"{API}/reports.csv", headers=commune_px).status_code == 403


def test_open311_listing_links_each_reports_first_photo(api: TestClient, resident_a: Persona) -> None:
    photos = [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(), "image/jpeg")]
    with_photos = file_report(api, resident_a, photos=photos).json()
    without = file_report(api, resident_a, point=KIM_LONG).json()
    listed = {r["service_request_id"]: r for r in api.get("/open311/v2/requests.json").json()}
    first = with_photos["photos"][0]["id"]  # photos are listed in the order they were sent
    assert listed[str(with_photos["id"])]["media_url"].endswith(f"/api/miniapps/feedback/photos/{first}")
    assert listed[str(without["id"])]["media_url"] is None


def test_synthetic_city_reports_are_consistent(api: TestClient) -> None:
    with Session(api.app.state.engine) as db:  # residents of two wards file the reports (others' too)
        db.add_all([User(kind=UserKind.resident, display_name=f"Cư dân {n}", phone=f"+8499000{n:04d}",
                         home_unit_id="phu-xuan" if n % 2 else "kim-long") for n in range(20)])
        db.commit()
    url = str(api.app.state.engine.url.render_as_string(hide_password=False))
    city = City(url, scale=0.002)  # 720 reports
    written = load(city)
    assert written["feedback_report"] == 720 and written["feedback_event"] >= 720
    with Session(api.app.state.engine) as db:
        reports = list(db.exec(select(FeedbackReport)))
        assert len(reports) == 720
        assert all(r.description.startswith("[synthetic]") for r in reports)
        units = [u for u in places.local_units(db) if u.lat is not None]
        for report in reports[::37]:  # each point lies in its own unit, as the product would locate it
            nearest = min(units, key=lambda u: places.distance_m(report.lat, report.lon, u.lat, u.lon))
            assert nearest.id == report.unit_id
        # the timeline's last state change is the report's state, for every report
        last = dict(db.execute(text(
            "SELECT e.report_id, e.to_state FROM feedback_event e WHERE e.to_state IS NOT NULL AND e.id = "
            "(SELECT MAX(e2.id) FROM feedback_event e2 WHERE e2.report_id = e.report_id "
            "AND e2.to_state IS NOT NULL AND e2.action <> 'escalated')")).all())
        assert all(last[r.id] == r.state.value for r in reports)
        states = {r.state.value for r in reports}
        assert {"closed", "rejected"} <= states and states & {"submitted", "accepted", "assigned", "in_progress"}
        assert {r.reporter_id for r in reports if r.unit_id == "phu-xuan" and r.reporter_id} <= set(
            db.exec(select(User.id).where(User.home_unit_id == "phu-xuan")))
        rated = [r for r in reports if r.rating is not None]
        assert rated and all(r.state.value == "closed" and 1 <= r.rating <= 5 for r in rated)
