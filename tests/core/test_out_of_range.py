"""Numbers no row can have and text the database cannot store are 4xx problems naming the field, not 500s."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from tests.conftest import base_settings


@pytest.fixture
def lenient(database_url: str, tmp_path) -> TestClient:
    with TestClient(create_app(base_settings(database_url=database_url, var_dir=tmp_path)),
                    raise_server_exceptions=False) as client:
        yield client


def test_an_id_beyond_any_row_is_a_404_naming_the_path_parameter(lenient: TestClient) -> None:
    response = lenient.get("/api/feed/99999999999999999999")
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "path.item_id"


@pytest.mark.parametrize("number", ["2147483647", "2147483648"])
def test_the_largest_ids_are_plain_404s(lenient: TestClient, number: str) -> None:
    """2**31 fits SQLite's integers but not PostgreSQL's: either way the answer is that nothing has it."""
    assert lenient.get(f"/api/feed/{number}").status_code == 404
