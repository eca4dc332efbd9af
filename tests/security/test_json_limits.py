"""JSON depth: deeply nested JSON is a clear 4xx on the API and an error frame on /ws, never a 500 or a drop."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from core.limits import MAX_JSON_DEPTH
from miniapps.floodmap.demo import demo_key, load_demo_stations
from tests.conftest import base_settings
from tests.security.conftest import Served

INGEST = "/api/miniapps/floodmap/ingest/kim-long-gauge"
DEEP = "[" * 100_000 + "]" * 100_000  # 200 KB, well under the body limit
JUST_TOO_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A host with the demo stations, on SQLite then on PostgreSQL."""
    app = create_app(base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var"))
    list(load_demo_stations(app.state.host))
    with TestClient(app) as test_client:
        yield test_client


def _ingest(client: TestClient, body: str) -> Any:
    return client.post(INGEST, content=body, headers={"X-Sensor-Key": demo_key("kim-long-gauge"),
                                                      "Content-Type": "application/json"})


@pytest.mark.parametrize("body", [DEEP, JUST_TOO_DEEP, '{"readings":' + DEEP + "}"])
def test_deeply_nested_sensor_json_is_a_clear_422(client: TestClient, body: str) -> None:
    """The ingest route parses its own body: nesting past the limit is refused naming the body."""
    answer = _ingest(client, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == "body"
    assert f"{MAX_JSON_DEPTH} levels" in answer.json()["detail"]


def test_nesting_within_the_limit_is_judged_as_before(client: TestClient) -> None:
    """Depth up to the limit is parsed; what it holds is then judged like any other batch."""
    answer = _ingest(client, "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == 1


def test_deeply_nested_json_to_a_model_route_is_a_clear_4xx(client: TestClient) -> None:
    """Routes whose body FastAPI parses answer problem+json that says what is wrong."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", content='{"stars":' + DEEP + "}",
                         headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "nested" in answer.json()["detail"]


def test_deep_nesting_with_a_lone_surrogate_is_still_a_clear_4xx(client: TestClient) -> None:
    """The host's surrogate guard parses such bodies first: nesting too deep for it passes on to the route's 422."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", content='{"c":"\\ud800","stars":' + DEEP + "}",
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"


def test_a_deeply_nested_skiptoken_is_a_400(client: TestClient) -> None:
    """SensorThings paging tokens are JSON too: a forged deep one is refused, not a 500."""
    token = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).decode().rstrip("=")
    answer = client.get("/api/miniapps/floodmap/v1.1/Things", params={"$skiptoken": token})
    assert answer.status_code == 400, answer.text


def test_deeply_nested_json_over_the_websocket_gets_an_error_frame(served: Served) -> None:
    """On /ws the same input is answered with ``bad_json`` and the connection stays open."""
    from websockets.sync.client import connect

    who = served.resident()
    url = served.url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers=who, proxy=None, open_timeout=10) as ws:
        deep = "[" * 30_000 + "]" * 30_000  # 60 KB: inside the 64 KiB frame limit
        ws.send(deep)
        replies = []
        while not replies or replies[-1].get("type") == "ping":
            replies.append(json.loads(ws.recv(timeout=10)))
        assert replies[-1]["type"] == "error"
        assert replies[-1]["code"] == "bad_json"
        assert "nested" in replies[-1]["detail"]
        ws.send(json.dumps({"type": "ping"}))
        reply = json.loads(ws.recv(timeout=10))
        while reply.get("type") == "ping":
            reply = json.loads(ws.recv(timeout=10))
        assert reply == {"type": "pong"}
