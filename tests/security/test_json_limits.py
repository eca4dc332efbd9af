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
from core.limits import MAX_JSON_DEPTH, json_nesting_exceeds
from miniapps.floodmap.demo import demo_key, load_demo_stations
from tests.conftest import base_settings
from tests.security.conftest import Served

INGEST = "/api/miniapps/floodmap/ingest/kim-long-gauge"
DEEP = "[" * 100_000 + "]" * 100_000  # 200 KB, well under the body limit
JUST_TOO_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)


@pytest.fixture(autouse=True)
def no_deep_parse(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Fails the test if any code in this process hands Python's JSON parser text nested past 500 levels.

    Such text makes the parser recurse to a RecursionError; catching one in a long-lived worker is not
    safe (CPython 3.11 can be left failing unrelated code later), so deep text must be refused before.
    """
    real = json.loads
    deep: list[int] = []

    def guarded(text: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(text, str | bytes | bytearray) and json_nesting_exceeds(bytes(text) if not isinstance(
                text, str) else text, 500):
            deep.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", guarded)
    yield deep
    assert not deep, f"deep JSON reached json.loads: {deep}"


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
    """Nesting is judged before the surrogate guard parses the body: one 422 naming the body."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", content='{"c":"\\ud800","stars":' + DEEP + "}",
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"


def test_a_deep_body_without_content_type_is_refused_before_parsing(client: TestClient) -> None:
    """FastAPI reads a body without a content type as JSON: it is scanned like any other."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", content='{"stars":' + DEEP + "}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"


def test_a_form_body_full_of_brackets_is_not_judged_as_json(client: TestClient) -> None:
    """Only JSON is scanned: a form whose text is all brackets reaches the route (401 here: not signed in)."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", data={"comment": "[" * 5000})
    assert answer.status_code == 401, answer.text


def test_brackets_inside_json_strings_are_text_not_nesting(client: TestClient) -> None:
    """A string of 5,000 brackets is one level deep: the route judges it (401: not signed in), not the guard."""
    answer = client.post("/api/miniapps/feedback/reports/1/rating", content=json.dumps({"comment": "[{" * 5000}),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("where", ["header", "claims"])
def test_a_bearer_token_with_deep_json_is_a_401(client: TestClient, where: str) -> None:
    """A forged access token whose header or claims nest deeply is refused as malformed before PyJWT reads it."""
    deep = base64.urlsafe_b64encode(('{"a":' + "[" * 5000 + "]" * 5000 + "}").encode()).decode().rstrip("=")
    plain = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    token = f"{deep}.{plain}.c2ln" if where == "header" else f"{plain}.{deep}.c2ln"
    answer = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.text
    assert "malformed" in answer.json()["detail"]


def test_a_deeply_nested_filter_is_a_400(client: TestClient) -> None:
    """$filter trees deeper than 64 levels are refused by their depth (later walks of the tree recurse)."""
    answer = client.get("/api/miniapps/floodmap/v1.1/Things", params={"$filter": "(" * 120 + "id eq 1" + ")" * 120})
    assert answer.status_code == 200, answer.text
    answer = client.get("/api/miniapps/floodmap/v1.1/Things", params={"$filter": "not " * 70 + "true"})
    assert answer.status_code == 400, answer.text
    assert "levels deep" in answer.json()["detail"]


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
