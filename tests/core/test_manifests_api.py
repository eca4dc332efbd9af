"""GET /api/miniapps: what each caller sees, localized, ordered and cacheable."""

from fastapi.testclient import TestClient

from core.identity.principal import Membership, Principal
from core.manifests import visible_miniapps
from plugins.manager import load_miniapps
from tests.plugins.sample import candidate, manifest


def test_anonymous_gets_public_resident_tiles_localized(client: TestClient) -> None:
    vi = client.get("/api/miniapps")
    assert vi.status_code == 200
    body = vi.json()
    assert body["locale"] == "vi" and vi.headers["content-language"] == "vi"
    festival = next(m for m in body["miniapps"] if m["id"] == "festival")
    assert festival["name"] == "Festival Huế"
    assert festival["entry_url"] == "/m/festival/"
    assert festival["scopes"] == [{"scope": "location", "reason": "Gợi ý sự kiện gần bạn.", "granted": False}]
    assert festival["source"].startswith("superapp-festival")

    en = client.get("/api/miniapps", headers={"Accept-Language": "fr;q=1, en-GB;q=0.8, vi;q=0.5"})
    assert en.json()["locale"] == "en"
    assert next(m for m in en.json()["miniapps"] if m["id"] == "festival")["name"] == "Hue Festival"


def test_etag_gives_304_and_changes_with_language(client: TestClient) -> None:
    first = client.get("/api/miniapps")
    etag = first.headers["etag"]
    again = client.get("/api/miniapps", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    english = client.get("/api/miniapps", headers={"Accept-Language": "en", "If-None-Match": etag})
    assert english.status_code == 200 and english.headers["etag"] != etag
    assert "Accept-Language" in first.headers["vary"]


def _apps():
    public = manifest(id="news", public=True, order=5)
    resident_only = manifest(id="wallet", public=False, order=1)
    officials = manifest(id="tasks", public=False, audiences=["commune_official", "department_official"],
                         placement="tab")
    operators = manifest(id="ops", public=False, audiences=["operator"], placement="menu")
    _, apps = load_miniapps(
        [candidate(m["id"], manifest_data=m) for m in (public, resident_only, officials, operators)],
        host_version="1.0.0",
    )
    return apps


def test_visibility_by_audience_and_role() -> None:
    apps = _apps()
    ids = lambda p: [m.id for m in visible_miniapps(apps, p)]  # noqa: E731
    assert ids(Principal()) == ["news"]
    assert ids(Principal(user_id=1, kind="resident")) == ["wallet", "news"]
    commune = Principal(user_id=2, kind="official", memberships=(Membership("commune_official", "phu-xuan"),))
    assert ids(commune) == ["tasks"]
    operator = Principal(user_id=3, kind="official", memberships=(Membership("operator", "hue"),))
    assert ids(operator) == ["ops"]
    admin = Principal(user_id=4, kind="official", memberships=(Membership("admin", "hue"),))
    # home tiles first (by order), then tabs, then menu entries
    assert ids(admin) == ["wallet", "news", "tasks", "ops"]
