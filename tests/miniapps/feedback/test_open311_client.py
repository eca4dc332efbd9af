"""The PyPI georeport client (an Open311 GeoReport v2 wrapper nobody here wrote) against the served app.

georeport 0.3.1 only reads (services, definitions, requests); it has no create call, so requests are
POSTed with httpx exactly as the specification's example shows (form-encoded, api_key in the body).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from georeport import GeoReport

from tests.miniapps.feedback.conftest import PHU_XUAN
from tests.miniapps.feedback.test_open311 import api_key  # noqa: F401  (fixture)


@pytest.fixture
def served(api: TestClient) -> Iterator[str]:
    """The test host's app served by uvicorn on loopback (its lifespan already runs in ``api``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/open311/v2"
    finally:
        server.should_exit = True
        thread.join(10)


def as_list(answer: Any) -> list[dict[str, Any]]:
    """georeport's XML answers come through xmltodict: one request is a dict, several a list."""
    return answer if isinstance(answer, list) else [answer]


@pytest.mark.parametrize("output_format", ["json", "xml"])
def test_georeport_client_ordinary_calls(served: str, api_key: str, output_format: str) -> None:  # noqa: F811
    client = GeoReport(served, output_format=output_format)
    services = client.get_service_list()
    codes = {s["service_code"] for s in services}
    assert {"trash", "roads"} <= codes
    definition = client.get_service_definition("trash")
    attributes = definition["attributes"]
    if output_format == "xml":  # xmltodict: <attributes><attribute>…</attribute></attributes>
        attributes = [attributes["attribute"]]
    assert attributes[0]["code"] == "urgent"

    # POST /requests.json as the spec's example: form-encoded, api_key, service_code, a location
    made = httpx.post(f"{served}/requests.json", data={
        "api_key": api_key, "service_code": "trash", "lat": str(PHU_XUAN[0]), "long": str(PHU_XUAN[1]),
        "address_string": "Phường Phú Xuân, Thành phố Huế", "description": "Rác ùn ứ",
        "media_url": "https://images.example.org/trash.jpg"})
    assert made.status_code == 200 and made.headers["content-type"] == "application/json; charset=utf-8"
    request_id = made.json()[0]["service_request_id"]
    by_address = httpx.post(f"{served}/requests.json", data={
        "api_key": api_key, "service_code": "roads", "address_string": "Phường Kim Long, Thành phố Huế"})
    assert by_address.status_code == 200, by_address.text
    other_id = by_address.json()[0]["service_request_id"]

    one = client.get_service_request(request_id)
    assert one["service_request_id"] == request_id and one["status"] == "open"
    assert one["media_url"] == "https://images.example.org/trash.jpg"
    listed = as_list(client.get_service_requests(service_request_id=f"{request_id},{other_id}"))
    assert sorted(r["service_request_id"] for r in listed) == sorted([request_id, other_id])
    roads = as_list(client.get_service_requests(service_code="roads", status="open"))
    assert [r["service_request_id"] for r in roads] == [other_id]
    assert roads[0]["description"] is None  # no description sent: optional in the spec

    unknown = httpx.post(f"{served}/requests.json", data={"api_key": api_key, "service_code": "nope",
                                                          "lat": str(PHU_XUAN[0]), "long": str(PHU_XUAN[1])})
    assert unknown.status_code == 404 and unknown.json()[0]["code"] == 404
