"""The host: problem+json errors, request ids, OpenAPI, operations endpoints, the third-party mini-app."""


import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from tests.conftest import base_settings


def test_unknown_path_is_problem_json(client: TestClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404 and response.json()["instance"] == "/api/nothing-here"


def test_validation_error_names_the_field(client: TestClient) -> None:
    # the festival's API has no parameters; the host's own route with a typed query is the probe
    response = client.get("/api/units", params={"kind": "province"})
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["field"] == "query.kind"
    assert problem["detail"].startswith("query.kind:")


def test_request_id_is_echoed_and_generated(client: TestClient) -> None:
    mine = "0123456789abcdef0123456789abcdef"
    assert client.get("/healthz", headers={"X-Request-ID": mine}).headers["x-request-id"] == mine
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32 and generated != mine


def test_openapi_is_served_with_stable_operation_ids(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    operation_ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"list_miniapps", "healthz", "readyz", "festival__list_events"} <= operation_ids


def test_ready_when_database_and_broker_answer(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "schema": "ok", "broker": "ok"}


def test_readyz_names_the_miniapp_whose_model_its_migrations_lack(settings) -> None:
    # A column the model has and the database lacks would make every call to the mini-app answer 500.
    from sqlalchemy import text

    app = create_app(settings)
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE festival_event DROP COLUMN venue"))
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["detail"] == "not ready: schema"
    assert "mini-app 'festival': table 'festival_event' column 'venue'" in response.json()["checks"]["schema"]


def test_readyz_names_what_is_down(settings, tmp_path) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.engine.dispose()
        app.state.engine = __import__("core.db", fromlist=["make_engine"]).make_engine(
            "postgresql://nobody@127.0.0.1:1/none")
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == "not ready: database"
    assert "127.0.0.1:1" in response.json()["checks"]["database"]


def test_readyz_with_redis_broker(sqlite_url, redis_url) -> None:
    with TestClient(create_app(base_settings(database_url=sqlite_url, redis_url=redis_url))) as client:
        assert client.get("/readyz").json()["checks"]["broker"] == "ok"


def test_third_party_miniapp_is_served(client: TestClient) -> None:
    from superapp_festival import service

    assert client.get("/api/miniapps/festival/events").json() == []
    page = client.get("/m/festival/", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Hue Festival programme" in page.text
    assert client.get("/static/m/festival/festival.css").status_code == 200
    # its event subscriber heard the host announce the loaded mini-apps
    assert service.host_ready and "festival" in service.host_ready[-1]


def test_unreachable_database_stops_startup(tmp_path) -> None:
    app = create_app(base_settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    with pytest.raises(Exception, match=r"cannot reach the database postgresql\+psycopg://nobody@127.0.0.1:1/none"):
        with TestClient(app):
            pass


def test_metrics_are_exposed(client: TestClient) -> None:
    assert "superapp_events_delivered" in client.get("/metrics").text


def test_units_api_lists_hue(client: TestClient) -> None:
    units = client.get("/api/units").json()
    kinds = [u["kind"] for u in units]
    assert kinds.count("ward") == 21 and kinds.count("commune") == 19 and kinds.count("department") == 10
    phu_xuan = client.get("/api/units/phu-xuan").json()
    assert phu_xuan["name_vi"] == "Phường Phú Xuân" and phu_xuan["parent_id"] == "hue"
    missing = client.get("/api/units/atlantis")
    assert missing.status_code == 404 and missing.json()["field"] == "path.unit_id"
