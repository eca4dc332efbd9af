"""The mini-app settings form speaks the page's language: a field's Vietnamese label and help when it has
them (``json_schema_extra`` ``title_vi``/``description_vi``), its English title otherwise."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.core.identity.conftest import Persona


def test_settings_labels_follow_the_page_language(api: TestClient, admin: Persona) -> None:
    vi = api.get("/admin/miniapps/floodmap/settings", params={"lang": "vi"}, headers=admin)
    assert vi.status_code == 200
    assert "Thời gian hiệu lực của cảnh báo (giờ)" in vi.text and "Warning lifetime (hours)" not in vi.text
    assert "Giữ mọi số đo (ngày)" in vi.text and "Keep every reading (days)" not in vi.text
    en = api.get("/admin/miniapps/floodmap/settings", params={"lang": "en"}, headers=admin)
    assert "Warning lifetime (hours)" in en.text and "Thời gian hiệu lực" not in en.text
