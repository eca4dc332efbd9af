"""Errors on pages are localized HTML pages in the shell; the API and the standards' paths keep RFC 9457
problem details; links on pages are shown only to those who may follow them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.core.identity.conftest import Persona

HTML = "text/html"
PROBLEM = "application/problem+json"


def kind(response) -> str:
    return response.headers["content-type"].split(";")[0]


NOT_FOUND = {"vi": "Không tìm thấy trang", "en": "Page not found"}
TO_CORRECT = {"vi": "Thông tin chưa đúng", "en": "Something to correct"}
NO_REPORT = {"vi": "Không có phản ánh này.", "en": "No such report."}  # the mini-app's own refusal page


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/nope", 404, NOT_FOUND),
    ("/m/nope/", 404, NOT_FOUND),
    ("/m/feedback/reports/999999", 404, NO_REPORT),
    ("/m/feedback/reports/abc", 422, TO_CORRECT),
    # too large for an id: the mini-app's refusal (SQLite) or the host's page (PostgreSQL's range error)
    ("/m/feedback/reports/99999999999", 404, (NO_REPORT, NOT_FOUND)),
    ("/m/floodmap/stations/999999", 404, NOT_FOUND),
])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_pages_answer_errors_with_a_page_in_the_shell(api: TestClient, path: str, status: int, says: dict | tuple,
                                                      lang: str) -> None:
    answer = api.get(path, params={"lang": lang})
    assert answer.status_code == status and kind(answer) == HTML
    assert answer.headers["content-language"] == lang
    other = "en" if lang == "vi" else "vi"
    assert 'class="topbar"' in answer.text
    assert any(text[lang] in answer.text and text[other] not in answer.text
               for text in (says if isinstance(says, tuple) else (says,)))
    assert '"status":' not in answer.text  # no problem+json printed in the page


def test_a_bad_path_parameter_is_named_on_the_page(api: TestClient) -> None:
    answer = api.get("/m/feedback/reports/abc", params={"lang": "en"})
    assert 'data-field="path.report_id"' in answer.text


@pytest.mark.parametrize(("path", "status"), [
    ("/api/nope", 404),
    ("/api/miniapps/feedback/reports/abc", 422),
    ("/open311/v2/services/nope.json", 404),
])
def test_the_api_and_standards_keep_problem_details(api: TestClient, path: str, status: int) -> None:
    answer = api.get(path)
    assert answer.status_code == status and kind(answer) in (PROBLEM, "application/json")
    assert answer.json()


def test_a_program_asking_a_page_path_for_json_gets_json(api: TestClient) -> None:
    answer = api.get("/m/nope", headers={"Accept": "application/json"})
    assert answer.status_code == 404 and kind(answer) == PROBLEM


def test_an_official_page_refuses_a_resident_with_a_page(api: TestClient, resident_a: Persona) -> None:
    answer = api.get("/m/floodmap/dashboard", params={"lang": "vi"}, headers=resident_a, follow_redirects=False)
    assert answer.status_code == 403 and kind(answer) == HTML
    assert "<h1>Không có quyền</h1>" in answer.text


def test_the_flood_map_links_its_dashboard_only_for_those_it_lets_in(api: TestClient, resident_a: Persona,
                                                                    operator: Persona) -> None:
    for who in ({}, resident_a):
        page = api.get("/m/floodmap/", params={"lang": "vi"}, headers=who)
        assert page.status_code == 200 and "/m/floodmap/dashboard" not in page.text
    page = api.get("/m/floodmap/", params={"lang": "vi"}, headers=operator)
    assert 'data-testid="dashboard-link"' in page.text
    assert api.get("/m/floodmap/dashboard", headers=operator).status_code == 200
