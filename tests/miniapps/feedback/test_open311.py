"""Open311 GeoReport v2 under /open311/v2: JSON and XML, api keys, filters, the standard's errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from miniapps.feedback.models import FeedbackReport
from plugins import OrgUnit
from tests.core.identity.conftest import Persona
from tests.miniapps.feedback.conftest import PHU_XUAN, act

PHU_XUAN_ID = "phu-xuan"

V2 = "/open311/v2"


@pytest.fixture
def api_key(api: TestClient, admin: Persona) -> str:
    """A live key issued by an admin."""
    return api.post("/api/miniapps/feedback/api-keys", headers=admin, json={"name": "tests"}).json()["api_key"]


def xml(response: Any) -> ET.Element:
    """The XML body, after checking it is XML."""
    assert response.headers["content-type"].startswith("text/xml"), response.headers["content-type"]
    return ET.fromstring(response.content)


def create(api: TestClient, key: str, fmt: str = "json", **fields: str) -> Any:
    """POST a service request (form-encoded, as the specification says)."""
    data = {"api_key": key, "service_code": "trash", "lat": str(PHU_XUAN[0]), "long": str(PHU_XUAN[1]),
            "description": "Rác ùn ứ đầu hẻm", "email": "an@example.org", "first_name": "An", **fields}
    return api.post(f"{V2}/requests.{fmt}", data=data)


def test_discovery_and_services_in_both_formats(api: TestClient) -> None:
    discovery = api.get(f"{V2}/discovery.json").json()
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2")
    root = xml(api.get(f"{V2}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.iter("format")] == ["text/xml", "application/json"]

    services = api.get(f"{V2}/services.json").json()
    codes = {s["service_code"]: s for s in services}
    assert {"roads", "trash", "public-order"} <= set(codes)
    assert set(codes["roads"]) == {"service_code", "service_name", "description", "metadata", "type", "keywords",
                                   "group"}
    assert codes["roads"]["metadata"] is True and codes["roads"]["type"] == "realtime"
    root = xml(api.get(f"{V2}/services.xml"))
    assert root.tag == "services" and {s.findtext("service_code") for s in root.findall("service")} == set(codes)
    assert root.find("service/metadata").text == "true"

    definition = api.get(f"{V2}/services/trash.json").json()
    assert definition["service_code"] == "trash" and definition["attributes"][0]["code"] == "urgent"
    root = xml(api.get(f"{V2}/services/trash.xml"))
    assert root.tag == "service_definition"
    assert [v.findtext("key") for v in root.findall("attributes/attribute/values/value")] == ["false", "true"]
    missing = api.get(f"{V2}/services/nope.xml")
    assert missing.status_code == 404 and xml(missing).tag == "errors"


def test_create_then_token_list_and_get(api: TestClient, api_key: str, commune_px: Persona, operator: Persona) -> None:
    made = create(api, api_key)
    assert made.status_code == 200, made.text
    [answer] = made.json()
    # the request exists at once, so the spec's answer is its id, not a token as well
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert made.headers["content-type"] == "application/json; charset=utf-8"
    request_id = answer["service_request_id"]
    with Session(api.app.state.engine) as db:  # the token lookup still answers for the tokens we hold
        token = db.get(FeedbackReport, int(request_id)).token
    root = xml(create(api, api_key, "xml", **{"attribute[urgent]": "true"}))
    assert root.tag == "service_requests" and root.find("request/service_request_id").text.isdigit()

    assert api.get(f"{V2}/tokens/{token}.json").json() == [{"service_request_id": request_id, "token": token}]
    assert xml(api.get(f"{V2}/tokens/{token}.xml")).find("request/service_request_id").text == request_id

    [one] = api.get(f"{V2}/requests/{request_id}.json").json()
    assert one["status"] == "open" and one["service_code"] == "trash"
    assert one["agency_responsible"] == "Sở Nông nghiệp và Môi trường"
    assert one["lat"] == PHU_XUAN[0] and one["long"] == PHU_XUAN[1]
    assert one["extended_attributes"]["status_detail"] == "submitted"
    assert "An" not in str(one) and "example.org" not in str(one)  # the reporter's contact is not public
    # operators see the contact; the department handles the report
    assert "an@example.org" in api.get(f"/api/miniapps/feedback/reports/{request_id}", headers=operator).json()[
        "reporter_contact"]

    # state detail travels in the extension; open/closed is the standard's
    act(api, operator, int(request_id), "accept")
    act(api, operator, int(request_id), "resolve", response="Đã thu gom")
    root = xml(api.get(f"{V2}/requests/{request_id}.xml"))
    request = root.find("request")
    assert request.findtext("status") == "closed" and request.findtext("status_notes") == "Đã thu gom"
    assert request.findtext("extended_attributes/status_detail") == "resolved"
    assert request.findtext("long") == str(PHU_XUAN[1])


def test_list_filters(api: TestClient, api_key: str, operator: Persona) -> None:
    ids = [create(api, api_key, service_code=code).json()[0]["service_request_id"]
           for code in ("trash", "roads", "roads")]
    act(api, operator, int(ids[2]), "reject", reason="Spam")  # rejected requests are not public
    act(api, operator, int(ids[1]), "accept")
    act(api, operator, int(ids[1]), "resolve", response="Xong")

    def listed(fmt: str = "json", **params: str) -> list[str]:
        answer = api.get(f"{V2}/requests.{fmt}", params=params)
        assert answer.status_code == 200, answer.text
        if fmt == "xml":
            return [r.findtext("service_request_id") for r in xml(answer).findall("request")]
        return [r["service_request_id"] for r in answer.json()]

    assert listed() == [ids[1], ids[0]]
    assert listed("xml") == [ids[1], ids[0]]
    assert listed(status="open") == [ids[0]] and listed(status="closed") == [ids[1]]
    assert listed(status="open,closed") == [ids[1], ids[0]]
    assert listed(service_code="roads") == [ids[1]]
    assert listed(service_request_id=f"{ids[0]},{ids[2]}") == [ids[0]]
    assert listed(start_date="2000-01-01T00:00:00Z", end_date="2000-02-01T00:00:00Z") == []
    assert api.get(f"{V2}/requests/{ids[2]}.json").status_code == 404


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_use_the_open311_format(api: TestClient, api_key: str, fmt: str) -> None:
    def error(response: Any) -> tuple[int, int, str]:
        if fmt == "xml":
            root = xml(response)
            assert root.tag == "errors"
            return response.status_code, int(root.findtext("error/code")), root.findtext("error/description")
        [body] = response.json()
        return response.status_code, body["code"], body["description"]

    status, code, text = error(create(api, "wrong-key", fmt))
    assert status == code == 403 and "api_key" in text
    status, code, text = error(create(api, api_key, fmt, service_code="nope"))
    assert status == code == 404 and "service_code" in text
    status, code, text = error(create(api, api_key, fmt, media_url="javascript:alert(1)"))
    assert status == code == 400 and "media_url" in text
    status, code, text = error(create(api, api_key, fmt, lat="", long="", address_string="12 Lê Lợi, Hà Nội"))
    assert status == code == 400 and "address_string" in text
    status, code, text = error(create(api, api_key, fmt, lat="21.03", long="105.85"))
    assert status == code == 400 and "outside Hue" in text
    status, code, text = error(create(api, api_key, fmt, lat="north"))
    assert status == code == 400 and "lat" in text
    status, code, text = error(api.get(f"{V2}/requests/424242.{fmt}"))
    assert status == code == 404
    status, code, text = error(api.get(f"{V2}/requests.{fmt}", params={"status": "pending"}))
    assert status == code == 400 and "status" in text
    status, code, text = error(api.get(f"{V2}/requests.{fmt}", params={"start_date": "yesterday"}))
    assert status == code == 400 and "start_date" in text
    unknown = api.get(f"{V2}/requests.yaml")  # no format to answer in: JSON, the default
    assert unknown.status_code == 404 and unknown.json()[0]["code"] == 404


def located(api: TestClient, key: str, **fields: str) -> dict[str, Any]:
    """POST a request without lat/long (as a client that only knows an address does), then GET it back."""
    data = {"api_key": key, "service_code": "trash", **fields}
    made = api.post(f"{V2}/requests.json", data=data)
    assert made.status_code == 200, made.text
    [one] = api.get(f"{V2}/requests/{made.json()[0]['service_request_id']}.json").json()
    return one


def test_requests_located_by_address_alone(api: TestClient, api_key: str) -> None:
    # a 2025 unit name, a pre-2025 ward (Phú Hội joined Thuận Hóa) and our unit id / official code
    new = located(api, api_key, address_string="12 Lê Lợi, Phường Thuận Hóa, Thành phố Huế")
    assert new["extended_attributes"]["unit"] == "thuan-hoa" and new["address"].startswith("12 Lê Lợi")
    old = located(api, api_key, address_string="5 Phạm Ngũ Lão, Phường Phú Hội, Thành phố Huế, Thừa Thiên Huế")
    assert old["extended_attributes"]["unit"] == "thuan-hoa"
    kim_long = located(api, api_key, address_string="Phường Kim Long, Huế")
    assert kim_long["extended_attributes"]["unit"] == "kim-long"
    by_id = located(api, api_key, address_id="kim-long")
    assert by_id["extended_attributes"]["unit"] == "kim-long" and by_id["lat"] and by_id["long"]
    with Session(api.app.state.engine) as db:
        code = db.get(OrgUnit, "phu-xuan").code
    assert located(api, api_key, address_id=code)["extended_attributes"]["unit"] == "phu-xuan"


def test_description_optional_and_media_url_kept(api: TestClient, api_key: str) -> None:
    photo = "https://images.example.org/hue/pothole-1.jpg"
    one = located(api, api_key, lat=str(PHU_XUAN[0]), long=str(PHU_XUAN[1]), media_url=photo)
    assert one["description"] is None and one["media_url"] == photo
    root = xml(api.get(f"{V2}/requests/{one['service_request_id']}.xml"))
    assert root.findtext("request/media_url") == photo
    listed = api.get(f"{V2}/requests.json", params={"service_request_id": one["service_request_id"]})
    assert listed.headers["content-type"] == "application/json; charset=utf-8"
    assert listed.json()[0]["media_url"] == photo


def test_an_address_no_unit_matches_is_kept_for_an_operator_to_place(api: TestClient, api_key: str,
                                                                     operator: Persona, commune_px: Persona) -> None:
    made = api.post(f"{V2}/requests.json", data={"api_key": api_key, "service_code": "trash",
                                                "address_string": "gần chợ, chỗ cây đa to"})
    assert made.status_code == 200, made.text
    [answer] = made.json()
    assert "operator will place it" in answer["service_notice"] and "token" not in answer
    ident = answer["service_request_id"]
    [one] = api.get(f"{V2}/requests/{ident}.json").json()
    assert one["lat"] is None and one["long"] is None and one["address"] == "gần chợ, chỗ cây đa to"
    assert one["extended_attributes"]["needs_placing"] is True and one["extended_attributes"]["unit"] is None
    by_id = api.post(f"{V2}/requests.xml", data={"api_key": api_key, "service_code": "trash", "address_id": "nowhere"})
    assert by_id.status_code == 200 and "operator will place it" in xml(by_id).findtext("request/service_notice")

    queue = "/api/miniapps/feedback/queue"
    waiting = api.get(queue, headers=operator, params={"needs_placing": "true"}).json()["items"]
    assert {str(i["id"]) for i in waiting} >= {ident} and all(i["needs_placing"] for i in waiting)
    assert all(not i["needs_placing"] for i in api.get(queue, headers=operator,
                                                       params={"needs_placing": "false"}).json()["items"])
    page = api.get("/m/feedback/queue", headers=operator, params={"placing": "true"})
    assert page.status_code == 200 and 'data-testid="needs-placing"' in page.text
    assert 'name="placing"' in page.text
    mapped = api.get("/api/miniapps/feedback/reports.geojson").json()["features"]
    assert ident not in {str(f["properties"].get("id", f.get("id"))) for f in mapped}  # no point of its own yet
    report_page = api.get(f"/m/feedback/reports/{ident}", headers=operator).text
    assert 'data-testid="action-place"' in report_page and 'data-testid="place-unit"' in report_page
    # a commune official does not handle the city's queue; an operator places it, once
    assert act(api, commune_px, int(ident), "place", unit_id=PHU_XUAN_ID).status_code in (403, 404)
    assert act(api, operator, int(ident), "place", unit_id="hue").status_code == 422  # the city is no place
    placed = act(api, operator, int(ident), "place", unit_id=PHU_XUAN_ID)
    assert placed.status_code == 200, placed.text
    [after] = api.get(f"{V2}/requests/{ident}.json").json()
    assert after["extended_attributes"]["needs_placing"] is False
    assert after["extended_attributes"]["unit"] == PHU_XUAN_ID and after["lat"] and after["long"]
    # handled as a request located there by lat/long is: the category's handler for the place, not the city
    at_point = located(api, api_key, lat=str(PHU_XUAN[0]), long=str(PHU_XUAN[1]))
    assert after["extended_attributes"]["handling_unit"] == at_point["extended_attributes"]["handling_unit"] != "hue"
    assert act(api, operator, int(ident), "place", unit_id=PHU_XUAN_ID).status_code == 409
    assert 'data-testid="action-place"' not in api.get(f"/m/feedback/reports/{ident}", headers=operator).text
    assert ident not in {str(i["id"]) for i in api.get(queue, headers=operator,
                                                       params={"needs_placing": "true"}).json()["items"]}
    with Session(api.app.state.engine) as db:
        report = db.get(FeedbackReport, int(ident))
        assert report.needs_placing is False and report.unit_id == PHU_XUAN_ID
