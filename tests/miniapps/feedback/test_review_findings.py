"""Review findings: failing tests that demonstrate bugs in the feedback mini-app."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from miniapps.feedback import handling, service
from miniapps.feedback.models import FeedbackEvent, FeedbackReport
from tests.core.identity.conftest import Persona
from tests.miniapps.feedback.conftest import KIM_LONG, PHU_XUAN, act, file_report


def _lenient(api: TestClient) -> TestClient:
    return TestClient(api.app, raise_server_exceptions=False)


def test_open311_get_request_with_out_of_range_id_is_404_not_500(api: TestClient) -> None:
    client = _lenient(api)
    response = client.get("/open311/v2/requests/99999999999999999999.json")
    assert response.status_code == 404, response.text


def test_open311_get_request_with_unicode_digit_id_is_404_not_500(api: TestClient) -> None:
    client = _lenient(api)
    response = client.get("/open311/v2/requests/%C2%B2.json")  # "²".isdigit() is True, int("²") raises
    assert response.status_code == 404, response.text


def test_open311_list_requests_with_out_of_range_id_is_400_not_500(api: TestClient) -> None:
    client = _lenient(api)
    response = client.get("/open311/v2/requests.json", params={"service_request_id": "99999999999999999999"})
    assert response.status_code in (200, 400), response.text


def test_get_report_with_out_of_range_id_is_404_not_500(api: TestClient, resident_a: Persona) -> None:
    client = _lenient(api)
    response = client.get("/api/miniapps/feedback/reports/99999999999999999999", headers=resident_a)
    assert response.status_code in (404, 422), response.text


def test_handler_cannot_mark_duplicate_of_a_report_it_may_not_see(
        api: TestClient, resident_a: Persona, resident_b: Persona, commune_px: Persona, commune_kl: Persona) -> None:
    # resident_b's report in Kim Long, rejected by Kim Long: hidden from everyone but its reporter and Kim Long
    hidden = file_report(api, resident_b, point=KIM_LONG, description="Hidden Kim Long report").json()
    assert act(api, commune_kl, hidden["id"], "reject", reason="abusive").status_code == 200
    assert api.get(f"/api/miniapps/feedback/reports/{hidden['id']}", headers=commune_px).status_code == 404
    assert api.get(f"/api/miniapps/feedback/reports/{hidden['id']}", headers=resident_a).status_code == 404
    # Phú Xuân's handler names it as the original of a Phú Xuân report
    mine = file_report(api, resident_a, point=PHU_XUAN).json()
    marked = act(api, commune_px, mine["id"], "duplicate", duplicate_of=hidden["id"])
    # expected: refused (404/422) as the original is not visible to this official;
    # actually: 200, and resident_a now follows, and can read, Kim Long's hidden (rejected) report
    leaked = api.get(f"/api/miniapps/feedback/reports/{hidden['id']}", headers=resident_a)
    assert leaked.status_code == 404, leaked.text
    assert marked.status_code in (404, 422), marked.text


def test_concurrent_accept_and_reject_do_not_both_succeed(
        api: TestClient, resident_a: Persona, commune_px: Persona, monkeypatch) -> None:
    report = file_report(api, resident_a, point=PHU_XUAN).json()
    barrier = threading.Barrier(2, timeout=10)
    original = service.visible_report

    def slow_visible(session, **kwargs):  # both requests read the report before either writes
        found = original(session, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(handling, "visible_report", slow_visible)
    results: dict[str, int] = {}

    def run(action: str, **fields: str) -> None:
        client = _lenient(api)
        results[action] = act(client, commune_px, report["id"], action, **fields).status_code

    threads = [threading.Thread(target=run, args=("accept",)),
               threading.Thread(target=run, args=("reject",), kwargs={"reason": "spam"})]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(api.app.state.engine) as db:
        events = list(db.exec(select(FeedbackEvent.action).where(FeedbackEvent.report_id == report["id"],
                                                                FeedbackEvent.action.in_(["accept", "reject"]))))
        final = db.get(FeedbackReport, report["id"]).state.value
    # Both transitions started from 'submitted'; only one may win, the other must get 409.
    assert sorted(results.values()) == [200, 409], (results, events, final)


def test_open311_xml_stays_well_formed_when_a_report_holds_control_characters(
        api: TestClient, resident_a: Persona) -> None:
    import xml.etree.ElementTree as ET

    filed = file_report(api, resident_a, description="Ổ gà\x07 trước nhà\x0b số 5")
    assert filed.status_code in (200, 201), filed.text
    xml = api.get(f"/open311/v2/requests/{filed.json()['id']}.xml")
    assert xml.status_code == 200
    [request] = ET.fromstring(xml.content).findall("request")  # raises on malformed XML
    assert request.findtext("description").startswith("Ổ gà trước nhà")
