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
