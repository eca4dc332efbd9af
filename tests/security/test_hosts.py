"""A forged Host header never reaches the absolute links of the CAP, Open311 and SensorThings answers: they are
built from SUPERAPP_PUBLIC_URL, and with SUPERAPP_ALLOWED_HOSTS set any other Host is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config import load_settings
from config.settings import SettingsError
from core.app import create_app
from tests.conftest import base_settings

FORGED = {"Host": "evil.example"}
LINKING = ["/open311/v2/discovery.json", "/open311/v2/discovery.xml", "/api/miniapps/floodmap/v1.1",
           "/api/miniapps/floodmap/cap/feed.atom"]


def _host(database_url: str, tmp_path: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var", **overrides)))


@pytest.mark.parametrize("path", LINKING)
def test_links_use_the_public_url_whatever_the_host_says(database_url: str, tmp_path: Path, path: str) -> None:
    with _host(database_url, tmp_path, public_url="https://hue-s.example.vn/") as client:
        answer = client.get(path, headers=FORGED)
    assert answer.status_code == 200, answer.text
    assert "evil.example" not in answer.text
    assert "https://hue-s.example.vn/" in answer.text


@pytest.mark.parametrize("path", [*LINKING, "/", "/healthz"])
def test_a_host_outside_the_allowed_list_is_refused(database_url: str, tmp_path: Path, path: str) -> None:
    with _host(database_url, tmp_path, allowed_hosts=["hue-s.example.vn", "testserver"]) as client:
        forged = client.get(path, headers=FORGED)
        honest = client.get(path)
    assert forged.status_code == 400
    assert "evil.example" not in forged.text
    assert honest.status_code == 200, honest.text


def test_the_public_url_must_be_an_origin() -> None:
    with pytest.raises(SettingsError, match="SUPERAPP_PUBLIC_URL"):
        load_settings(public_url="https://hue-s.example.vn/some/path")
