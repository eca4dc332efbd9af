"""The contract kit passes a good mini-app and catches a bad one."""

import pytest

from plugins.testing import check_miniapp, check_pages_render
from tests.plugins.sample import candidate, routes_hook


def test_sample_miniapp_passes_the_kit(tmp_path) -> None:
    check_miniapp("festival", tmp_path)


def test_kit_catches_a_page_without_language(tmp_path, monkeypatch) -> None:
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse

    from config import Settings
    from core.app import create_app

    def routes(register):
        pages = APIRouter()
        pages.add_api_route("/", lambda: HTMLResponse("<html><body>hi</body></html>"), methods=["GET"])
        register(pages=pages)

    monkeypatch.setattr("core.app.find_candidates", lambda **_: [candidate("sample", superapp_register_routes=routes)])
    app = create_app(Settings(env="test", secret_key="x" * 40, database_url=f"sqlite:///{tmp_path/'k.db'}",
                              scheduler_enabled=False))
    [miniapp] = app.state.miniapps
    with pytest.raises(AssertionError, match=r"mini-app 'sample': entry page in 'vi' must declare"):
        check_pages_render(app, miniapp)


@pytest.mark.parametrize(("search", "message"), [
    (lambda query: [{"title": "Chợ Đông Ba", "url": "https://example.com/"}], "must be a path in this app"),
    (lambda query: [{"title": "no url"}], "answered with an error"),
])
def test_kit_catches_a_malformed_search_provider(tmp_path, monkeypatch, search, message) -> None:
    from config import Settings
    from core.app import create_app
    from plugins.testing import check_search_providers

    hook = lambda register: register(search, label={"vi": "Mẫu", "en": "Sample"})  # noqa: E731
    monkeypatch.setattr("core.app.find_candidates", lambda **_: [candidate(
        "sample", superapp_register_routes=routes_hook("/x"), superapp_register_search_providers=hook)])
    app = create_app(Settings(env="test", secret_key="x" * 40, database_url=f"sqlite:///{tmp_path/'k.db'}",
                              scheduler_enabled=False))
    with pytest.raises(AssertionError, match=message):
        check_search_providers(app, app.state.miniapps[0])
