"""Review findings: failing tests that demonstrate bugs in the flood map mini-app."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from miniapps.floodmap.models import FloodObservation
from tests.miniapps.floodmap.conftest import KIM_LONG, push, readings

ST = "/api/miniapps/floodmap/v1.1"


def _lenient(fm_client: TestClient) -> TestClient:
    return TestClient(fm_client.app, raise_server_exceptions=False)


def _count(app) -> int:
    with Session(app.state.engine) as db:
        return db.exec(select(func.count()).select_from(FloodObservation)).one()


def test_ingest_a_reading_at_the_edge_of_time_is_rejected_not_a_500_losing_the_batch(fm_app, fm_client) -> None:
    client = _lenient(fm_client)
    before = _count(fm_app)
    good = readings(0.6)
    # a valid ISO 8601 time with a zone that cannot be moved to UTC (year 1, +01:00) -> OverflowError in _parse_time
    batch = {"readings": [good[0], {"time": "0001-01-01T00:30:00+01:00", "value": 0.6}]}
    answer = push(client, KIM_LONG, batch)
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "rejected"]
    assert _count(fm_app) == before + 1


def test_ingest_a_huge_integer_value_is_rejected_not_a_500_losing_the_batch(fm_app, fm_client) -> None:
    client = _lenient(fm_client)
    good = readings(0.6)
    huge = int("9" * 400)  # valid JSON number; math.isfinite(int) raises OverflowError
    answer = push(client, KIM_LONG, {"readings": [good[0], {"time": good[0]["time"], "value": huge}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][1]["status"] == "rejected"


def test_sensorthings_top_with_a_unicode_digit_is_400_not_500(fm_client) -> None:
    client = _lenient(fm_client)
    answer = client.get(f"{ST}/Things", params={"$top": "²"})  # "²".isdigit() is True, int("²") raises
    assert answer.status_code == 400, answer.text


def test_sensorthings_filter_with_out_of_range_id_is_400_not_500(fm_client) -> None:
    client = _lenient(fm_client)
    answer = client.get(f"{ST}/Things", params={"$filter": "id eq 99999999999999999999"})
    assert answer.status_code in (200, 400), answer.text


def test_sensorthings_filter_with_unrepresentable_datetime_is_400_not_500(fm_client) -> None:
    client = _lenient(fm_client)
    answer = client.get(f"{ST}/Observations", params={"$filter": "phenomenonTime gt 0001-01-01T00:00:00+01:00"})
    assert answer.status_code in (200, 400), answer.text


def test_sensorthings_entity_with_out_of_range_id_is_404_not_500(fm_client) -> None:
    client = _lenient(fm_client)
    answer = client.get(f"{ST}/Things(99999999999999999999)")
    assert answer.status_code in (400, 404), answer.text
