"""/metrics is not public: with SUPERAPP_METRICS_TOKEN it needs that bearer token, and without one it is off in
production (development and test hosts keep it open for local scraping)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from tests.conftest import base_settings

TOKEN = "scrape-token-0123456789abcdef0123"


def _host(database_url: str, tmp_path: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var", **overrides)))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_metrics_need_the_token(database_url: str, tmp_path: Path, headers: dict[str, str]) -> None:
    with _host(database_url, tmp_path, metrics_token=TOKEN) as client:
        answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "superapp_" not in answer.text and "python_gc" not in answer.text


def test_metrics_answer_with_the_token(database_url: str, tmp_path: Path) -> None:
    with _host(database_url, tmp_path, metrics_token=TOKEN) as client:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert "python_gc_objects_collected_total" in answer.text


def test_metrics_are_off_in_production_without_a_token(database_url: str, tmp_path: Path) -> None:
    with _host(database_url, tmp_path, env="production", secret_key="a-production-secret-0123456789abcdef") as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200
