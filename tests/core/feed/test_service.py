"""The feed's service on SQLite and PostgreSQL: publishing rules, who sees what, pins, expiry, the cursor,
the page cache and the mini-apps' cards."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.db import make_engine
from core.feed import service
from core.feed.events import FeedItemPublished, FeedItemWithdrawn
from core.feed.models import FeedItem
from core.feed.service import EVERYTHING, FeedError, PageCache, Reader
from core.identity import service as identity
from core.identity.authz import Authorizer
from core.identity.principal import ANONYMOUS, Membership, Principal
from plugins.context import HostContext
from plugins.feed import FeedCard, FeedContext
from plugins.registry import FeedContributor
from push.models import UnitFollow
from tests.core.feed.conftest import publish_in

UNITS = ("phu-xuan", "kim-long", "an-cuu", "thuan-hoa")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated database (SQLite, then PostgreSQL)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def read_all(engine: Engine, reader: Reader, *, limit: int = 7, now: datetime | None = None) -> list[int]:
    """Every stream item ``reader`` sees, page by page, newest first."""
    ids: list[int] = []
    cursor = None
    with engine.connect() as db:
        while True:
            page = service.read_page(db, principal=ANONYMOUS, cursor=cursor, limit=limit, now=now, reader=reader)
            ids += [e.id for e in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor


def official(role: str, unit: str) -> Principal:
    """A signed-in official holding ``role`` in ``unit`` (no account needed for the rules)."""
    return Principal(user_id=999, kind="official", memberships=(Membership(role, unit),))


# --- Publishing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": {"vi": "Tin", "en": "y" * 201}}, "title.en"),
    ({"title": {"vi": " ", "en": "News"}}, "title.vi"),
    ({"body": {"vi": "", "en": "x"}}, "body.vi"),
    ({"title": "just one language"}, "title"),
    ({"kind": "warning"}, "severity"),
    ({"kind": "news", "severity": "critical"}, "severity"),
    ({"kind": "gossip"}, "kind"),
    ({"audience": "tourists"}, "audience"),
    ({"kind": "warning", "severity": "apocalyptic"}, "severity"),
    ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_at"),
    ({"expires_at": datetime(2099, 1, 1)}, "expires_at"),
    ({"unit_ids": ["phu-xuan", "atlantis"]}, "unit_ids"),
    ({"unit_ids": ["hue"]}, "unit_ids"),
    ({"unit_ids": [f"u{n}" for n in range(51)]}, "unit_ids"),
    ({"author_unit_id": "atlantis"}, "author_unit_id"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "//evil.example/x"}, "url"),
])
def test_publish_refuses_a_bad_item_naming_the_field(engine: Engine, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(FeedError) as refused:
        publish_in(engine, **fields)
    assert refused.value.status == 422 and refused.value.field == field, refused.value.reason
    with engine.connect() as db:
        assert service.read_page(db, principal=ANONYMOUS, reader=EVERYTHING).items == []


def test_publish_stores_targets_and_both_languages(engine: Engine) -> None:
    item = publish_in(engine, author_unit_id="so-tu-phap", kind="warning", severity="critical",
                      unit_ids=["kim-long", "phu-xuan", "kim-long"], url="/m/festival/",
                      title={"vi": " Ngập ", "en": "Flooding"}, body={"vi": "Nước lên", "en": "Water rising"})
    assert item.id and not item.city_wide and item.severity == "critical"
    with engine.connect() as db:
        assert service.target_units(db, item.id) == ["kim-long", "phu-xuan"]
        entry = service.get_item(db, principal=ANONYMOUS, item_id=item.id, reader=EVERYTHING)
    assert entry is not None
    assert entry.localized("vi")["title"] == "Ngập" and entry.localized("en")["title"] == "Flooding"
    assert entry.localized("en")["author_unit_name"] != entry.localized("vi")["author_unit_name"]
    assert entry.unit_ids == ["kim-long", "phu-xuan"] and entry.localized("en")["published_at"].endswith("Z")
    city = publish_in(engine)
    assert city.city_wide and city.severity == "info"


def test_a_ward_may_publish_in_vietnamese_only(engine: Engine) -> None:
    item = publish_in(engine, title={"vi": "Lịch tiêm chủng"}, body={"vi": "Sáng thứ Bảy tại nhà văn hoá", "en": ""})
    with engine.connect() as db:
        entry = service.get_item(db, principal=ANONYMOUS, item_id=item.id or 0, reader=EVERYTHING)
    assert entry is not None  # English readers see the Vietnamese rather than a gap
    assert entry.localized("en")["title"] == "Lịch tiêm chủng" == entry.localized("vi")["title"]


# --- Who sees what ----------------------------------------------------------------------------------------


def test_every_reader_sees_exactly_what_the_rule_allows(engine: Engine) -> None:
    """The SQL (one index branch per way in) and the plain rule (``can_see``) agree on random items."""
    rng = random.Random(5)
    expected: dict[int, dict[str, Any]] = {}
    for _ in range(150):
        targeted = rng.random() < 0.5
        units = rng.sample(UNITS, rng.choice((1, 2))) if targeted else []
        fields = {"audience": rng.choice(("everyone", "residents", "officials")), "unit_ids": units,
                  "author_unit_id": rng.choice(("hue", "so-tu-phap", *UNITS))}
        item = publish_in(engine, **fields)
        expected[item.id] = fields
    # withdrawn and expired items are never seen by anyone
    gone = publish_in(engine)
    with Session(engine) as db:
        service.withdraw_item(db, item_id=gone.id)
    soon = publish_in(engine, expires_at=datetime.now(UTC) + timedelta(seconds=30))
    later = datetime.now(UTC) + timedelta(minutes=1)
    readers = [
        service.ANONYMOUS_READER, EVERYTHING,
        Reader(audiences=("everyone", "residents"), units=("phu-xuan",)),
        Reader(audiences=("everyone", "residents"), units=("an-cuu", "kim-long")),
        Reader(audiences=("everyone", "officials"), units=("thuan-hoa",), author_units=("thuan-hoa",)),
        Reader(audiences=("everyone", "officials"), units=("so-tu-phap",), author_units=("so-tu-phap",)),
    ]
    for reader in readers:
        seen = read_all(engine, reader, now=later)
        assert len(seen) == len(set(seen)) and seen == sorted(seen, reverse=True), reader
        allowed = [i for i, f in expected.items() if service.can_see(
            reader, audience=f["audience"], city_wide=not f["unit_ids"], unit_ids=f["unit_ids"],
            author_unit_id=f["author_unit_id"])]
        assert set(seen) == set(allowed), reader
        assert gone.id not in seen and soon.id not in seen


def test_reader_for_each_kind_of_caller(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as db:
        resident = identity.find_or_create_resident(db, firebase_uid="feed-r1", phone="+84905111222", address=None)
        resident.home_unit_id = "phu-xuan"
        db.add(resident)
        db.add(UnitFollow(user_id=resident.id, unit_id="an-cuu"))
        db.commit()
        principal = Principal(user_id=resident.id, kind="resident", home_unit_id="phu-xuan")
        assert service.reader_for(db, principal) == Reader(audiences=("everyone", "residents"),
                                                           units=("an-cuu", "phu-xuan"))
    assert service.reader_for(None, ANONYMOUS) == service.ANONYMOUS_READER
    assert service.reader_for(None, official("operator", "hue")) == EVERYTHING
    assert service.reader_for(None, official("admin", "hue")) == EVERYTHING
    assert service.reader_for(None, official("commune_official", "kim-long")) == Reader(
        audiences=("everyone", "officials"), units=("kim-long",), author_units=("kim-long",))


# --- Pins, expiry, withdrawal -------------------------------------------------------------------------------


def test_pinned_items_come_apart_on_the_first_page_only(engine: Engine) -> None:
    for n in range(5):
        publish_in(engine, title={"vi": f"Tin {n}", "en": f"News {n}"})
    pin = publish_in(engine, pinned=True)
    pin_for_kim_long = publish_in(engine, pinned=True, unit_ids=["kim-long"])
    expired_pin = publish_in(engine, pinned=True, expires_at=datetime.now(UTC) + timedelta(seconds=5))
    for _ in range(5):
        publish_in(engine)
    later = datetime.now(UTC) + timedelta(seconds=10)
    phu_xuan = Reader(audiences=("everyone", "residents"), units=("phu-xuan",))
    with engine.connect() as db:
        first = service.read_page(db, principal=ANONYMOUS, limit=4, now=later, reader=phu_xuan)
        assert [e.id for e in first.pinned] == [pin.id] and first.first
        second = service.read_page(db, principal=ANONYMOUS, cursor=first.next_cursor, limit=50, now=later,
                                   reader=phu_xuan)
        assert second.pinned == [] and not second.first
        everything = service.read_page(db, principal=ANONYMOUS, now=later, reader=EVERYTHING)
        assert [e.id for e in everything.pinned] == [pin_for_kim_long.id, pin.id]
    stream = [e.id for e in (*first.items, *second.items)]
    assert len(stream) == 10 and not {pin.id, pin_for_kim_long.id, expired_pin.id} & set(stream)


def test_expired_and_withdrawn_items_disappear(engine: Engine) -> None:
    now = datetime.now(UTC)
    lasting = publish_in(engine, expires_at=now + timedelta(hours=1))
    brief = publish_in(engine, expires_at=now + timedelta(minutes=1))
    withdrawn = publish_in(engine)
    with Session(engine) as db:
        assert service.withdraw_item(db, item_id=withdrawn.id) is not None
        assert service.withdraw_item(db, item_id=withdrawn.id) is None  # once
    with engine.connect() as db:
        at_once = service.read_page(db, principal=ANONYMOUS)
        assert [e.id for e in at_once.items] == [brief.id, lasting.id]
        assert at_once.changes_at == brief.expires_at  # the page says when it goes stale by itself
        two_minutes_on = service.read_page(db, principal=ANONYMOUS, now=now + timedelta(minutes=2))
        assert [e.id for e in two_minutes_on.items] == [lasting.id]
        assert service.get_item(db, principal=ANONYMOUS, item_id=brief.id, now=now + timedelta(minutes=2)) is None
        assert service.get_item(db, principal=ANONYMOUS, item_id=withdrawn.id) is None
        assert service.get_item(db, principal=ANONYMOUS, item_id=lasting.id) is not None


# --- The cursor ---------------------------------------------------------------------------------------------


def test_cursor_never_skips_or_repeats_while_items_arrive(engine: Engine) -> None:
    existing = {publish_in(engine).id for _ in range(33)}
    seen: list[int] = []
    cursor = None
    pages = 0
    with engine.connect() as db:
        while True:
            page = service.read_page(db, principal=ANONYMOUS, cursor=cursor, limit=5)
            seen += [e.id for e in page.items]
            pages += 1
            for _ in range(3):  # newer items arrive between every two page reads
                publish_in(engine)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert pages == 7
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert set(seen) == existing, "an item was skipped, or a newer one slipped in"


@pytest.mark.parametrize("cursor", ["", "abc", "!!!!", "ZjE6", "ZjE6LTE", "ZjE6MA", "eDoxMA", "ZjE6MWU5",
                                    "ZjE6" + "OTk5" * 12])
def test_a_cursor_that_is_not_ours_is_refused(cursor: str) -> None:
    with pytest.raises(FeedError) as refused:
        service.decode_cursor(cursor)
    assert refused.value.status == 422 and refused.value.field == "cursor"


def test_cursor_round_trip() -> None:
    for n in (1, 42, 2**31 - 2):
        text = service.encode_cursor(n)
        assert service.decode_cursor(text) == n and "=" not in text and "/" not in text and "+" not in text


def test_limit_is_bounded(engine: Engine) -> None:
    with engine.connect() as db:
        for limit in (0, 51):
            with pytest.raises(FeedError) as refused:
                service.read_page(db, principal=ANONYMOUS, limit=limit)
            assert refused.value.field == "limit"


def test_page_queries_walk_indexes_not_the_table(engine: Engine) -> None:
    """Every shape of the page query can be answered from indexes; none has to scan feed_item or its targets.

    SQLite's plan is read as is. PostgreSQL prefers a sequential scan on a table this small, so its
    plan is read with sequential scans priced out: one that remains means no index could serve.
    """
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    for n in range(30):
        publish_in(engine, unit_ids=[UNITS[n % 4]] if n % 3 else [], audience=("everyone", "residents")[n % 2])
    event.listen(engine, "before_cursor_execute", capture)
    readers = [service.ANONYMOUS_READER, EVERYTHING,
               Reader(audiences=("everyone", "residents"), units=("an-cuu", "phu-xuan")),
               Reader(audiences=("everyone", "officials"), units=("kim-long",), author_units=("kim-long",))]
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as db:
            raw = db.connection.driver_connection
            if not sqlite:
                raw.execute("SET enable_seqscan = off")
            for reader in readers:
                statements.clear()
                service.read_page(db, principal=ANONYMOUS, reader=reader, cursor=service.encode_cursor(20))
                for sql, params in statements:
                    if sqlite:
                        plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, params)]
                        scans = [p for p in plan if p.split(" ")[:2] in (["SCAN", "feed_item"], ["SCAN", "feed_item_unit"])]
                    else:
                        plan = [row[0] for row in raw.execute("EXPLAIN " + sql, params)]
                        scans = [p for p in plan if "Seq Scan on feed_item" in p]
                    assert not scans, (reader, "\n".join(plan))
    finally:
        event.remove(engine, "before_cursor_execute", capture)


# --- Who may publish what -------------------------------------------------------------------------------------


def test_commune_officials_publish_for_their_own_unit_only(engine: Engine) -> None:
    authorizer = Authorizer([])
    ward = official("commune_official", "phu-xuan")
    with engine.connect() as db:
        service.check_publish(db, principal=ward, authorizer=authorizer, author_unit_id="phu-xuan",
                              unit_ids=["phu-xuan"])
        for author, targets, field in (("kim-long", ["kim-long"], "author_unit_id"),
                                       ("phu-xuan", ["kim-long"], "unit_ids"),
                                       ("phu-xuan", [], "unit_ids"),
                                       ("phu-xuan", ["phu-xuan", "an-cuu"], "unit_ids")):
            with pytest.raises(FeedError) as refused:
                service.check_publish(db, principal=ward, authorizer=authorizer, author_unit_id=author,
                                      unit_ids=targets)
            assert refused.value.status == 403 and refused.value.field == field
        department = official("department_official", "so-tu-phap")
        for targets in ([], ["kim-long", "an-cuu"]):
            service.check_publish(db, principal=department, authorizer=authorizer, author_unit_id="so-tu-phap",
                                  unit_ids=targets)
        with pytest.raises(FeedError):
            service.check_publish(db, principal=department, authorizer=authorizer, author_unit_id="phu-xuan",
                                  unit_ids=["phu-xuan"])
        for boss in (official("operator", "hue"), official("admin", "hue")):
            service.check_publish(db, principal=boss, authorizer=authorizer, author_unit_id="kim-long", unit_ids=[])
        resident = Principal(user_id=5, kind="resident", home_unit_id="phu-xuan")
        with pytest.raises(FeedError):
            service.check_publish(db, principal=resident, authorizer=authorizer, author_unit_id="phu-xuan",
                                  unit_ids=["phu-xuan"])
        options = service.publish_options(db, principal=ward, authorizer=authorizer)
        assert [(o["id"], o["own_unit_only"]) for o in options] == [("phu-xuan", True)]
        assert len(service.publish_options(db, principal=official("operator", "hue"), authorizer=authorizer)) > 40


# --- Announcing --------------------------------------------------------------------------------------------------


class Recorder:
    """Stands in for the event bus and the realtime hub; can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[Any] = []
        self.pushed: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def publish(self, *args: Any) -> Any:
        if self.fail:
            raise RuntimeError("down")
        if len(args) == 1:
            self.events.append(args[0])
        else:
            self.pushed.append((args[0], args[1]))
        return "1-0"


async def test_announce_reaches_the_bus_and_each_targeted_units_channel(engine: Engine) -> None:
    item = publish_in(engine, kind="warning", severity="critical", unit_ids=["phu-xuan", "kim-long"])
    bus, hub = Recorder(), Recorder()
    await service.announce(service.published_event(item, ["kim-long", "phu-xuan"]), events=bus, realtime=hub)
    [published] = bus.events
    assert isinstance(published, FeedItemPublished) and published.item_id == item.id
    assert published.unit_ids == ["kim-long", "phu-xuan"] and not published.city_wide
    assert [c for c, _ in hub.pushed] == ["unit:kim-long", "unit:phu-xuan"]
    assert hub.pushed[0][1] == {"type": "feed", "event": "published", "item_id": item.id, "kind": "warning",
                                "severity": "critical", "audience": "everyone"}
    city = publish_in(engine)
    await service.announce(service.withdrawn_event(city, []), events=bus, realtime=hub)
    assert isinstance(bus.events[-1], FeedItemWithdrawn) and hub.pushed[-1] == (
        "feed", {"type": "feed", "item_id": city.id, "event": "withdrawn"})
    # a broken bus or hub is logged, never raised: the item is stored already
    await service.announce(service.published_event(city, []), events=Recorder(fail=True), realtime=Recorder(fail=True))


async def test_a_miniapp_publishes_an_item_on_its_own_event(engine: Engine) -> None:
    bus = Recorder()
    host = HostContext(engine=engine, settings=None, publish_event=bus.publish)
    item_id = await service.publish_from_miniapp(host, miniapp="festival", kind="news", severity=None,
                                                 audience="everyone", title={"vi": "Khai mạc", "en": "Opening"},
                                                 body={"vi": "Tối nay", "en": "Tonight"}, unit_ids=["phu-xuan"])
    [published] = bus.events
    assert published.item_id == item_id and published.miniapp == "festival" and published.unit_ids == ["phu-xuan"]
    with Session(engine) as db:
        stored = db.get(FeedItem, item_id)
        assert stored is not None and stored.miniapp == "festival" and stored.author_unit_id == "hue"


# --- The page cache ------------------------------------------------------------------------------------------------


def test_page_cache_keeps_pages_briefly_and_never_past_an_expiry() -> None:
    now = datetime.now(UTC)
    key = (service.ANONYMOUS_READER, 10**6, 20)
    page = service.FeedPage(items=[], next_cursor=None, pinned=[], first=True)
    cache = PageCache(ttl=0.2)
    cache.keep_page(key, page, now, cache.generation)["vi"] = b"{}"
    assert cache.page(key) == (page, {"vi": b"{}"})
    time.sleep(0.25)
    assert cache.page(key) is None
    expiring = service.FeedPage(items=[], next_cursor=None, pinned=[], first=True,
                                changes_at=now + timedelta(milliseconds=50))
    cache.keep_page(key, expiring, now, cache.generation)
    time.sleep(0.08)
    assert cache.page(key) is None, "a page outlived an item's expiry"
    # a page read before a clear (something was published meanwhile) is not kept
    generation = cache.generation
    cache.clear()
    cache.keep_page(key, page, now, generation)
    assert cache.page(key) is None
    assert PageCache(ttl=0).keep_page(key, page, now, 0) == {} and PageCache(ttl=0).page(key) is None


# --- Mini-apps' cards -----------------------------------------------------------------------------------------------


def _context(limit: int = 3) -> FeedContext:
    return FeedContext(principal=ANONYMOUS, locale="en", host=None, now=datetime.now(UTC), limit=limit)  # type: ignore[arg-type]


async def test_cards_come_from_every_contributor_tagged_and_in_order() -> None:
    async def festival(context: FeedContext) -> list[FeedCard]:
        return [FeedCard(key=f"e{n}", title=f"Event {n} ({context.locale})") for n in range(5)]

    def traffic(context: FeedContext) -> list[dict[str, Any]]:
        return [{"key": "jam", "title": "Jam on Le Loi", "kind": "warning", "severity": "warning"}]

    cards = await service.contributed_cards(
        [FeedContributor(festival, "festival"), FeedContributor(traffic, "traffic")], _context(limit=2))
    assert [(c["miniapp"], c["key"]) for c in cards] == [("festival", "e0"), ("festival", "e1"), ("traffic", "jam")]
    assert cards[0]["title"] == "Event 0 (en)" and cards[2]["severity"] == "warning"


async def test_failing_slow_and_malformed_contributors_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    def broken(context: FeedContext) -> list[FeedCard]:
        raise RuntimeError("boom")

    # The slow ones finish only when the test lets them, after the feed has answered: deterministic,
    # whatever the machine's load (no wall-clock bound).
    release_async = asyncio.Event()
    release_sync = threading.Event()

    async def slow_async(context: FeedContext) -> list[FeedCard]:
        await release_async.wait()
        return [FeedCard(key="late", title="Late")]

    def slow_sync(context: FeedContext) -> list[FeedCard]:
        release_sync.wait(timeout=30)
        return [FeedCard(key="late", title="Late")]

    def malformed(context: FeedContext) -> Any:
        return [{"title": "no key", "colour": "red"}]

    def not_a_list(context: FeedContext) -> Any:
        return 42

    def good(context: FeedContext) -> list[FeedCard]:
        return [FeedCard(key="ok", title="Fine")]

    try:
        cards = await service.contributed_cards(
            [FeedContributor(f, name) for f, name in ((broken, "broken"), (slow_async, "slow_async"),
                                                      (slow_sync, "slow_sync"), (malformed, "malformed"),
                                                      (not_a_list, "not_a_list"), (good, "good"))],
            _context(), budget=0.1)
    finally:
        release_async.set()
        release_sync.set()
    assert [(c["miniapp"], c["key"]) for c in cards] == [("good", "ok")]
    logged = caplog.text
    for name in ("broken", "slow_async", "slow_sync", "malformed", "not_a_list"):
        assert f"'{name}'" in logged, name


async def test_kept_cards_are_served_at_once_and_refreshed_behind_the_reader() -> None:
    answer, asked, gate = "first", [], asyncio.Event()
    gate.set()

    async def ask() -> list[dict[str, Any]]:
        asked.append(answer)
        await gate.wait()  # a mini-app that answers only when the test lets it
        return [{"key": answer}]

    cards = service.CardCache(ttl=0.05)
    assert await cards.cards("anonymous", ask) == [{"key": "first"}]  # the first ask waits for the mini-apps
    answer = "second"
    gate.clear()
    await asyncio.sleep(0.06)  # older than ttl: served without waiting (wait_for would time out otherwise)...
    for _ in range(3):
        assert await asyncio.wait_for(cards.cards("anonymous", ask), 5) == [{"key": "first"}]
    await asyncio.sleep(0)
    assert asked == ["first", "second"]  # ...and asked again once, behind the reader
    gate.set()
    for _ in range(500):
        if await cards.cards("anonymous", ask) == [{"key": "second"}]:
            break
        await asyncio.sleep(0.01)
    assert await cards.cards("resident 7", ask) == [{"key": "second"}]  # kept per reader: this one is asked
    assert asked.count("second") >= 2
    uncached = service.CardCache(ttl=0)
    answer = "third"
    assert await uncached.cards("anonymous", ask) == [{"key": "third"}]
