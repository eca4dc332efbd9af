"""The one search box: fan-out to providers the caller may use, time budget, merging, errors, the page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config import Settings
from core.app import create_app
from core.identity import service
from plugins.manager import load_miniapps
from plugins.search import SearchResult
from tests.plugins.sample import candidate, manifest

RELEASE = threading.Event()  # lets the test end a slow thread-pool provider promptly


def _sync_roads(query):
    hits = [("Đường Lê Lợi ngập", 0.9), ("Đèn đường hỏng", 0.4)]
    from core.text import fold
    return [SearchResult(title=t, url="/m/roads/", snippet=query.folded, score=s) for t, s in hits
            if query.folded in fold(t)]


async def _async_places(query):
    return [{"title": f"Đường {query.text}", "url": "/m/places/", "score": 0.6}]


async def _slow(query):
    await asyncio.sleep(30)
    return []


def _slow_thread(query):
    RELEASE.wait(10)
    return [SearchResult(title="late", url="/m/late/")]


def _broken(query):
    raise RuntimeError("index is down")


def _nonsense(query):
    return [{"title": "no url"}]


def _officials_only(query):
    return [SearchResult(title=f"Nhiệm vụ {query.text}", url="/m/desk/", score=1.0)]


def _providers():
    def hook(search):
        return lambda register: register(search, label={"vi": "Nguồn", "en": "Source"})

    residents = {"roads": _sync_roads, "places": _async_places, "slow": _slow, "slowthread": _slow_thread,
                 "broken": _broken, "nonsense": _nonsense}
    candidates = [candidate(mid, manifest_data=manifest(id=mid, order=i),
                            superapp_register_search_providers=hook(search))
                  for i, (mid, search) in enumerate(residents.items())]
    candidates.append(candidate("desk", manifest_data=manifest(id="desk", public=False,
                                                               audiences=["commune_official"]),
                                superapp_register_search_providers=hook(_officials_only)))
    return load_miniapps(candidates, host_version="1.0.0")[1]


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """A host whose mini-apps are the fake providers above, with a short time budget."""
    app = create_app(settings.model_copy(update={"search_budget_seconds": 0.3}))
    app.state.miniapps = _providers()
    RELEASE.clear()
    with TestClient(app) as client:
        yield client
    RELEASE.set()


def _official(client: TestClient) -> dict[str, str]:
    from sqlmodel import Session
    with Session(client.app.state.engine) as db:
        user = service.create_official(db, username="search.px", display_name="Cán bộ", password="Sen-Hue-2025-vang",
                                       memberships=[("commune_official", "phu-xuan")])
        pair = service.start_session(db, secret=client.app.state.settings.secret_key, user=user, method="test",
                                     client="pytest", address="127.0.0.1")
    return {"Authorization": f"Bearer {pair.access_token}"}


def test_results_are_merged_by_score_with_their_source(api: TestClient) -> None:
    body = api.get("/api/search", params={"q": "  Đường   LÊ lợi "}).json()
    assert body["query"] == "Đường LÊ lợi" and body["folded"] == "duong le loi"
    assert [(h["source"], h["title"]) for h in body["results"]] == [
        ("roads", "Đường Lê Lợi ngập"), ("places", "Đường Đường LÊ lợi")]
    assert body["results"][0]["snippet"] == "duong le loi"  # the provider got the folded text
    status = {s["source"]: s["status"] for s in body["sources"]}
    assert status == {"roads": "ok", "places": "ok", "slow": "timeout", "slowthread": "timeout",
                      "broken": "error", "nonsense": "error"}


def test_without_diacritics_finds_the_same(api: TestClient) -> None:
    titles = [h["title"] for h in api.get("/api/search", params={"q": "duong le loi"}).json()["results"]]
    assert "Đường Lê Lợi ngập" in titles


def test_providers_of_mini_apps_the_caller_cannot_use_are_not_asked(api: TestClient) -> None:
    anonymous = api.get("/api/search", params={"q": "đê"}).json()
    assert "desk" not in {s["source"] for s in anonymous["sources"]}
    official = api.get("/api/search", params={"q": "đê"}, headers=_official(api)).json()
    # the official's audience meets only the officials' mini-app
    assert {s["source"] for s in official["sources"]} == {"desk"}
    assert official["results"][0]["title"] == "Nhiệm vụ đê"


def test_limit_caps_the_merged_list(api: TestClient) -> None:
    assert len(api.get("/api/search", params={"q": "đường", "limit": 1}).json()["results"]) == 1


@pytest.mark.parametrize("q", ["", "   ", "x" * 201])
def test_an_empty_or_long_query_names_the_field(api: TestClient, q: str) -> None:
    response = api.get("/api/search", params={"q": q})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "query.q"


def test_missing_query_and_bad_limit_name_the_field(api: TestClient) -> None:
    assert api.get("/api/search").json()["field"] == "query.q"
    assert api.get("/api/search", params={"q": "a", "limit": 0}).json()["field"] == "query.limit"


def test_search_page_shows_results_with_sources_and_missed_sources(api: TestClient) -> None:
    page = api.get("/search", params={"q": "duong le loi", "lang": "en"})
    assert page.status_code == 200
    assert 'data-source="roads"' in page.text and "Đường Lê Lợi ngập" in page.text
    assert 'data-testid="search-missed"' in page.text
    assert api.get("/search", params={"q": "x" * 300}).status_code == 422


def test_search_box_in_chromium(settings: Settings, page) -> None:
    """From the home screen's box to merged results: the festival sample's provider finds its event."""
    from sqlmodel import Session

    from core.db import make_engine
    from superapp_festival.service import load_demo_programme

    engine = make_engine(settings.database_url)
    list(load_demo_programme(type("Host", (), {"session": lambda self: Session(engine)})()))
    page.goto("/?lang=en")
    page.fill("[data-testid=home-search]", "le hoi duong pho")
    page.press("[data-testid=home-search]", "Enter")
    page.wait_for_url("**/search?**")
    hit = page.locator("[data-testid=search-results] .hit[data-source=festival]")
    hit.first.wait_for()
    assert hit.first.locator("a").inner_text() == "Street festival"
    assert hit.first.locator(".source").inner_text() == "Events"
    assert page.input_value("[data-testid=search-box]") == "le hoi duong pho"


def test_the_search_box_promises_only_what_this_caller_can_find(client: TestClient) -> None:
    """A visitor's box names the residents' sources; an official's adds questions and tasks (issue 16)."""
    import re

    from sqlmodel import Session

    from tests.conftest import TEST_SECRET

    def hint(**headers: str) -> str:
        found = re.search(r'id="home-q"[^>]*placeholder="([^"]*)"', client.get("/?lang=vi", headers=headers).text)
        assert found
        return found.group(1)

    visitor = hint()
    assert visitor.startswith("Tìm ") and "phản ánh hiện trường" in visitor and "trạm đo ngập" in visitor
    assert "hỏi đáp" not in visitor and "nhiệm vụ" not in visitor and "thủ tục" not in visitor
    assert "field reports" in client.get("/?lang=en").text
    with Session(client.app.state.engine) as db:
        official = service.create_official(db, username="px.search", display_name="Lê Tìm", password="Hue-2025-strong-pw",
                                           memberships=[("commune_official", "phu-xuan")])
        token = service.start_session(db, secret=TEST_SECRET, user=official, method="test", client="pytest",
                                      address="127.0.0.1").access_token
    official_hint = hint(Authorization=f"Bearer {token}")
    assert "hỏi đáp và cẩm nang" in official_hint and "nhiệm vụ" in official_hint
