"""The feed API on SQLite and PostgreSQL, with real sessions of the eight personas."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.feed.events import FeedItemPublished, FeedItemWithdrawn
from core.feed.models import FeedItem
from plugins.feed import FeedCard
from plugins.registry import EventSubscriber, FeedContributor
from push.models import UnitFollow
from tests.core.feed.conftest import Publish
from tests.core.identity.conftest import Persona


def stream(client: TestClient, persona: Persona, *, limit: int = 7, **headers: str) -> list[int]:
    """The ids of every stream item ``persona`` sees, following next_cursor to the end."""
    ids: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/feed", params=params, headers={**persona, **headers})
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            return ids
        cursor = body["next_cursor"]


def warning(**fields: Any) -> dict[str, Any]:
    """A valid publish body: a warning of Phú Xuân for Phú Xuân, with ``fields`` changed."""
    body: dict[str, Any] = {
        "author_unit_id": "phu-xuan", "kind": "warning", "severity": "critical", "audience": "everyone",
        "title": {"vi": "Nước dâng cao", "en": "Water rising"},
        "body": {"vi": "Di chuyển lên chỗ cao.", "en": "Move to higher ground."}, "unit_ids": ["phu-xuan"],
    }
    body.update(fields)
    return body


# --- Who sees what ------------------------------------------------------------------------------------


def test_each_persona_sees_exactly_its_items(feed_api: TestClient, personas: dict[str, Persona],
                                            publish: Publish) -> None:
    items = {
        "city": publish(),
        "city residents": publish(audience="residents"),
        "city officials": publish(audience="officials"),
        "phu-xuan": publish(author_unit_id="phu-xuan", unit_ids=["phu-xuan"]),
        "kim-long residents": publish(author_unit_id="kim-long", unit_ids=["kim-long"], audience="residents"),
        "phu-xuan officials by justice": publish(author_unit_id="so-tu-phap", unit_ids=["phu-xuan"],
                                                 audience="officials"),
        "an-cuu": publish(unit_ids=["an-cuu"]),
        "kim-long residents by justice": publish(author_unit_id="so-tu-phap", unit_ids=["kim-long"],
                                                 audience="residents"),
    }
    with Session(feed_api.app.state.engine) as db:  # resident B also follows An Cựu
        db.add(UnitFollow(user_id=personas["resident_b"].user_id, unit_id="an-cuu"))
        db.commit()
    expected = {
        "anonymous": {"city"},
        "resident_a": {"city", "city residents", "phu-xuan"},
        "resident_b": {"city", "city residents", "kim-long residents", "an-cuu", "kim-long residents by justice"},
        "commune_px": {"city", "city officials", "phu-xuan", "phu-xuan officials by justice"},
        # Kim Long's officials see what Kim Long published, whatever its audience
        "commune_kl": {"city", "city officials", "kim-long residents"},
        # the department sees what it published, not the wards' own items
        "department": {"city", "city officials", "phu-xuan officials by justice", "kim-long residents by justice"},
        "operator": set(items),
        "admin": set(items),
    }
    for who, persona in personas.items():
        seen = stream(feed_api, persona, limit=3)
        assert len(seen) == len(set(seen))
        assert {name for name, item in items.items() if item.id in seen} == expected[who], who
        for name, item in items.items():
            answer = feed_api.get(f"/api/feed/{item.id}", headers=persona)
            assert answer.status_code == (200 if name in expected[who] else 404), (who, name, answer.text)
    missing = feed_api.get("/api/feed/987654", headers=personas["admin"])
    hidden = feed_api.get(f"/api/feed/{items['phu-xuan'].id}", headers=personas["resident_b"])
    assert missing.json()["detail"].replace("987654", "") == hidden.json()["detail"].replace(
        str(items["phu-xuan"].id), ""), "a hidden item answers differently from a missing one"


def test_pinned_expired_and_withdrawn(feed_api: TestClient, anonymous: Persona, admin: Persona,
                                      publish: Publish) -> None:
    plain = [publish() for _ in range(3)]
    pinned = publish(pinned=True)
    expiring = publish(expires_at=datetime.now(UTC) + timedelta(seconds=1))
    gone = publish()
    assert feed_api.delete(f"/api/feed/{gone.id}", headers=admin).status_code == 204
    first = feed_api.get("/api/feed", params={"limit": 2}).json()
    assert [p["id"] for p in first["pinned"]] == [pinned.id] and first["pinned"][0]["pinned"] is True
    assert pinned.id not in [i["id"] for i in first["items"]]
    second = feed_api.get("/api/feed", params={"limit": 50, "cursor": first["next_cursor"]}).json()
    assert second["pinned"] == [] and second["from_miniapps"] == []
    everything = [i["id"] for i in first["items"] + second["items"]]
    assert everything == [expiring.id] + [p.id for p in reversed(plain)]
    assert feed_api.get(f"/api/feed/{gone.id}", headers=admin).status_code == 404
    assert feed_api.delete(f"/api/feed/{gone.id}", headers=admin).status_code == 404
    # an item past its expiry is gone from the stream and from its own URL
    time.sleep(max(0.0, (expiring.expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
    assert expiring.id not in stream(feed_api, anonymous)
    assert feed_api.get(f"/api/feed/{expiring.id}").status_code == 404


# --- The cursor -------------------------------------------------------------------------------------------


def test_cursor_never_skips_or_repeats_while_items_arrive(feed_api: TestClient, resident_a: Persona,
                                                        publish: Publish) -> None:
    existing = set()
    for n in range(24):
        existing.add(publish(unit_ids=["phu-xuan"] if n % 2 else []).id)
    first = feed_api.get("/api/feed", params={"limit": 10}, headers=resident_a).json()
    arrived = {publish().id, publish(unit_ids=["phu-xuan"]).id}  # newer items land between the reads
    second = feed_api.get("/api/feed", params={"limit": 10, "cursor": first["next_cursor"]},
                          headers=resident_a).json()
    arrived.add(publish(unit_ids=["phu-xuan"]).id)
    third = feed_api.get("/api/feed", params={"limit": 10, "cursor": second["next_cursor"]},
                         headers=resident_a).json()
    assert third["next_cursor"] is None
    seen = [i["id"] for page in (first, second, third) for i in page["items"]]
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert set(seen) == existing, "an item was skipped, or a newer one slipped in"
    # the newer items are there for a client that starts again from the top
    assert arrived <= set(stream(feed_api, resident_a))


@pytest.mark.parametrize(("params", "field"), [
    ({"cursor": "not-a-cursor"}, "query.cursor"),
    ({"cursor": "ZjE6LTE"}, "query.cursor"),
    ({"cursor": "x" * 65}, "query.cursor"),
    ({"limit": 0}, "query.limit"),
    ({"limit": 51}, "query.limit"),
    ({"limit": "many"}, "query.limit"),
])
def test_bad_cursor_or_limit_is_a_422_naming_it(feed_api: TestClient, params: dict[str, Any], field: str) -> None:
    response = feed_api.get("/api/feed", params=params)
    assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_item_id_must_be_a_positive_number(feed_api: TestClient) -> None:
    for bad, field in (("abc", "path.item_id"), ("0", "path.item_id")):
        response = feed_api.get(f"/api/feed/{bad}")
        assert response.status_code == 422 and response.json()["field"] == field


# --- Publishing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"title": {"vi": "Tin", "en": "y" * 201}}, "body.title.en"),
    ({"body": {"vi": "", "en": "x"}}, "body.body.vi"),
    ({"severity": None}, "body.severity"),
    ({"kind": "news", "severity": "warning"}, "body.severity"),
    ({"kind": "rumour"}, "body.kind"),
    ({"audience": "tourists"}, "body.audience"),
    ({"expires_at": "2020-01-01T00:00:00+07:00"}, "body.expires_at"),
    ({"expires_at": "2099-01-01T00:00:00"}, "body.expires_at"),  # no time zone
    ({"colour": "red"}, "body.colour"),  # unknown fields are named, not ignored
    ({"unit_ids": "phu-xuan"}, "body.unit_ids"),
    ({"url": "javascript:alert(1)"}, "body.url"),
    ({"title": {"vi": "x" * 201, "en": "y"}}, "body.title.vi"),
])
def test_publish_validation_names_the_field(feed_api: TestClient, commune_px: Persona, anonymous: Persona,
                                            change: dict[str, Any], field: str) -> None:
    body = warning(**change)
    if change.get("severity", "") is None:
        del body["severity"]
    response = feed_api.post("/api/feed", json=body, headers=commune_px)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field, response.json()
    assert stream(feed_api, commune_px) == []


def test_unknown_target_unit_is_named(feed_api: TestClient, operator: Persona) -> None:
    response = feed_api.post("/api/feed", json=warning(author_unit_id="hue", unit_ids=["atlantis"]), headers=operator)
    assert response.status_code == 422 and response.json()["field"] == "body.unit_ids"


def test_who_may_publish_for_which_units(feed_api: TestClient, personas: dict[str, Persona]) -> None:
    post = lambda who, **change: feed_api.post("/api/feed", json=warning(**change), headers=personas[who])  # noqa: E731
    assert post("commune_px").status_code == 201
    # a commune official speaks for their own unit only, to their own unit only
    for change, field in (({"author_unit_id": "kim-long", "unit_ids": ["kim-long"]}, "body.author_unit_id"),
                          ({"unit_ids": ["kim-long"]}, "body.unit_ids"),
                          ({"unit_ids": []}, "body.unit_ids"),
                          ({"unit_ids": ["phu-xuan", "an-cuu"]}, "body.unit_ids")):
        refused = post("commune_px", **change)
        assert refused.status_code == 403 and refused.json()["field"] == field, refused.json()
    # a department official targets any units or the whole city, as their department
    assert post("department", author_unit_id="so-tu-phap", unit_ids=[]).status_code == 201
    assert post("department", author_unit_id="so-tu-phap", unit_ids=["kim-long", "an-cuu"]).status_code == 201
    assert post("department", author_unit_id="phu-xuan").status_code == 403
    # operators and admins may publish as any unit, for anyone
    assert post("operator", author_unit_id="kim-long", unit_ids=["phu-xuan"]).status_code == 201
    assert post("admin", author_unit_id="hue", unit_ids=[]).status_code == 201
    # residents and anonymous callers publish nothing
    assert post("resident_a").status_code == 403 and post("anonymous").status_code == 401


def test_publish_answers_the_item_and_announces_it(feed_api: TestClient, department: Persona,
                                                  resident_b: Persona) -> None:
    events: list[Any] = []

    async def record(event: Any, host: Any) -> None:
        events.append(event)

    class Hub:
        """Stands in for the realtime hub being built beside the feed."""

        def __init__(self) -> None:
            self.published: list[tuple[str, dict[str, Any]]] = []

        async def publish(self, channel: str, event: dict[str, Any]) -> str:
            if event.get("type") == "feed":  # the notifier sends warnings to units' inboxes too
                self.published.append((channel, event))
            return "1-0"

    feed_api.app.state.events.subscribe(EventSubscriber(FeedItemPublished, record, "test"))
    feed_api.app.state.events.subscribe(EventSubscriber(FeedItemWithdrawn, record, "test"))
    feed_api.app.state.realtime = hub = Hub()
    response = feed_api.post("/api/feed", headers={**department, "Accept-Language": "en"}, json=warning(
        author_unit_id="so-tu-phap", unit_ids=["kim-long", "an-cuu"], severity="warning", pinned=True,
        url="/m/festival/", expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()))
    assert response.status_code == 201, response.text
    item = response.json()
    assert response.headers["location"] == f"/api/feed/{item['id']}"
    assert item["title"] == "Water rising" and item["author_unit_id"] == "so-tu-phap"
    assert item["unit_ids"] == ["an-cuu", "kim-long"] and item["pinned"] and not item["city_wide"]
    [published] = events
    assert isinstance(published, FeedItemPublished)
    assert (published.item_id, published.kind, published.severity, published.audience, published.city_wide,
            published.unit_ids) == (item["id"], "warning", "warning", "everyone", False, ["an-cuu", "kim-long"])
    assert [channel for channel, _ in hub.published] == ["unit:an-cuu", "unit:kim-long"]
    assert hub.published[0][1]["item_id"] == item["id"] and "title" not in hub.published[0][1]
    assert [p["id"] for p in feed_api.get("/api/feed", headers=resident_b).json()["pinned"]] == [item["id"]]
    # withdrawn: announced too, and gone
    assert feed_api.delete(f"/api/feed/{item['id']}", headers=department).status_code == 204
    assert isinstance(events[-1], FeedItemWithdrawn) and hub.published[-1][1]["event"] == "withdrawn"
    assert feed_api.get("/api/feed", headers=resident_b).json()["pinned"] == []
    city = feed_api.post("/api/feed", headers=department, json=warning(author_unit_id="so-tu-phap", unit_ids=[]))
    assert hub.published[-1][0] == "feed" and events[-1].city_wide and city.status_code == 201


def test_withdraw_who_may(feed_api: TestClient, personas: dict[str, Persona], publish: Publish) -> None:
    ward_only = publish(author_unit_id="phu-xuan", unit_ids=["phu-xuan"])
    for_everyone = publish(author_unit_id="phu-xuan")
    delete = lambda who, item: feed_api.delete(f"/api/feed/{item.id}", headers=personas[who]).status_code  # noqa: E731
    assert delete("anonymous", ward_only) == 401 and delete("resident_a", ward_only) == 403
    assert delete("commune_kl", ward_only) == 404  # cannot even see it
    assert delete("commune_kl", for_everyone) == 403 and delete("department", for_everyone) == 403
    assert delete("commune_px", ward_only) == 204 and delete("operator", for_everyone) == 204
    with Session(feed_api.app.state.engine) as db:
        assert db.get(FeedItem, ward_only.id).withdrawn_at is not None  # kept, for the record


def test_publishing_shows_at_once_despite_the_page_cache(api: TestClient, commune_px: Persona,
                                                        resident_a: Persona, publish: Publish) -> None:
    """The page cache is on here: what this worker publishes or withdraws is on the next read."""
    before = api.get("/api/feed", headers=resident_a).json()["items"]
    behind_its_back = publish()  # straight into the database: the cached page does not know yet
    assert api.get("/api/feed", headers=resident_a).json()["items"] == before
    created = api.post("/api/feed", json=warning(), headers=commune_px).json()
    ids = [i["id"] for i in api.get("/api/feed", headers=resident_a).json()["items"]]
    assert ids == [created["id"], behind_its_back.id]
    assert api.delete(f"/api/feed/{created['id']}", headers=commune_px).status_code == 204
    assert [i["id"] for i in api.get("/api/feed", headers=resident_a).json()["items"]] == [behind_its_back.id]


# --- Languages --------------------------------------------------------------------------------------------


def test_items_come_in_the_callers_language(feed_api: TestClient, anonymous: Persona, resident_a: Persona,
                                            publish: Publish) -> None:
    item = publish(title={"vi": "Cắt điện", "en": "Power cut"}, body={"vi": "Từ 8 giờ", "en": "From 8 am"},
                   author_unit_id="so-tu-phap")

    def read(persona: Persona, **headers: str) -> tuple[str, str, str, str]:
        response = feed_api.get("/api/feed", headers={**persona, **headers})
        body = response.json()
        [only] = body["items"]
        return body["locale"], only["title"], only["author_unit_name"], response.headers["content-language"]

    assert read(anonymous) == ("vi", "Cắt điện", "Sở Tư pháp", "vi")  # the server's default
    assert read(anonymous, **{"Accept-Language": "en-GB,en;q=0.9"})[:2] == ("en", "Power cut")
    assert read(anonymous, **{"Accept-Language": "fr, en;q=0.5"})[0] == "en"
    assert read(anonymous, **{"Accept-Language": "fr"})[0] == "vi"
    # the resident's own setting wins over the header
    assert feed_api.patch("/api/me", json={"locale": "en"}, headers=resident_a).status_code == 200
    assert read(resident_a, **{"Accept-Language": "vi"})[:2] == ("en", "Power cut")
    one = feed_api.get(f"/api/feed/{item.id}", headers={"Accept-Language": "en"}).json()
    assert (one["title"], one["body"]) == ("Power cut", "From 8 am")


# --- Mini-apps' cards ------------------------------------------------------------------------------------------


def test_festival_card_on_the_first_page_only(feed_api: TestClient, anonymous: Persona, commune_px: Persona,
                                              publish: Publish) -> None:
    from superapp_festival.models import FestivalEvent

    with Session(feed_api.app.state.engine) as db:
        db.add(FestivalEvent(title_vi="Đêm Hoàng cung", title_en="Royal Palace night", venue="Đại Nội",
                             starts_at=datetime.now(UTC) + timedelta(days=3)))
        db.add(FestivalEvent(title_vi="Đã qua", title_en="Past", venue="-", starts_at=datetime.now(UTC) - timedelta(days=1)))
        db.commit()
    feed_api.app.state.host.caches.clear()  # the festival keeps its next event in the host's cache
    for _ in range(3):
        publish()
    first = feed_api.get("/api/feed", params={"limit": 2}, headers={"Accept-Language": "en"}).json()
    [card] = first["from_miniapps"]
    assert card["miniapp"] == "festival" and card["title"] == "Next at the festival: Royal Palace night"
    assert card["url"] == "/m/festival/" and card["key"].startswith("next-event-")
    assert len(first["items"]) == 2 and card["key"] not in [str(i["id"]) for i in first["items"]]
    later = feed_api.get("/api/feed", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert later["from_miniapps"] == [] and len(later["items"]) == 1
    # only the mini-apps a caller may open contribute: the festival is for residents and operators
    assert feed_api.get("/api/feed", headers=commune_px).json()["from_miniapps"] == []


def test_a_failing_contributor_does_not_break_the_feed(feed_api: TestClient, publish: Publish,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(context: Any) -> list[FeedCard]:
        raise RuntimeError("the festival database is down")

    async def slow(context: Any) -> list[FeedCard]:
        import asyncio

        await asyncio.sleep(3)
        return []

    def fine(context: Any) -> list[FeedCard]:
        return [FeedCard(key="hello", title=f"Hello {context.principal.kind} ({context.locale})")]

    [festival] = [m for m in feed_api.app.state.miniapps if m.id == "festival"]
    festival.feed_contributors[:] = [FeedContributor(broken, "festival"), FeedContributor(slow, "festival"),
                                     FeedContributor(fine, "festival")]
    item = publish()
    response = feed_api.get("/api/feed")
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["items"]] == [item.id]
    assert [c["title"] for c in response.json()["from_miniapps"]] == ["Hello anonymous (vi)"]
    assert "the festival database is down" in caplog.text and "longer than" in caplog.text
