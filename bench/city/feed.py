"""The feed of a synthetic Hue: 1,000,000 items over four years (news, notices, events and 2,450 warnings a
year), city-wide and per unit, with their target units, audiences, expiries, a few withdrawn and pinned.

Shape, at scale 1.0 (``City.size`` scales every count):

- items are spread evenly over ``YEARS`` years ending at ``city.now``, ids in publication order (the feed's
  keyset order relies on ids growing with time, as they do when the product publishes);
- 30 % city-wide (the city's and the departments' news), 70 % for one unit (a ward or commune announcing
  something to its residents), a few for 2-5 units; busy wards publish several times more than quiet ones;
- 2,450 warnings a year, mostly flood and storm warnings for a handful of units at once, some city-wide,
  about a third of them posted by the flood-map mini-app; warnings expire after a day or two;
- events expire when they are over, some notices after a month; 0.3 % are withdrawn; a few live pins;
- audiences: 80 % everyone, 12 % residents only, 8 % officials only.

Every title starts with ``[synthetic]`` so nobody mistakes the city for real news.
"""

from __future__ import annotations

import array
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.city.base import SYNTHETIC, City

ITEMS = 1_000_000
WARNINGS_PER_YEAR = 2_450
YEARS = 4
LIVE_PINS = 5
ITEM_COLUMNS = ("id", "published_at", "kind", "severity", "audience", "author_unit_id", "author_user_id", "miniapp",
                "title_vi", "title_en", "body_vi", "body_en", "url", "city_wide", "pinned", "expires_at",
                "withdrawn_at")
# (title vi, title en, body vi, body en, days until it expires or None); {n} is the item's number.
NEWS = (
    ("Thông báo lịch cắt điện khu vực {n}", "Scheduled power cut in area {n}",
     "Người dân lưu ý theo dõi thông tin chính thức và chủ động sắp xếp công việc. Mã thông báo {n}.",
     "Residents should follow official updates and plan ahead. Notice {n}.", 3),
    ("Lịch tiêm chủng mở rộng đợt {n}", "Vaccination schedule, round {n}",
     "Trạm y tế tổ chức tiêm chủng cho trẻ em dưới 5 tuổi. Phụ huynh mang theo sổ tiêm chủng. Đợt {n}.",
     "The health station vaccinates children under five; bring the vaccination book. Round {n}.", 14),
    ("Điều chỉnh phân luồng giao thông, thông báo {n}", "Traffic diversion, notice {n}",
     "Các phương tiện đi theo hướng dẫn của lực lượng chức năng trong thời gian thi công. Thông báo {n}.",
     "Vehicles follow the diversion signs during the works. Notice {n}.", 30),
    ("Tin hoạt động của phường, số {n}", "Ward news, issue {n}",
     "Tổng hợp các hoạt động nổi bật trong tuần của địa phương và kế hoạch tuần tới. Bản tin {n}.",
     "This week's main local activities and next week's plans. Issue {n}.", None),
    ("Lễ hội và sự kiện văn hóa cuối tuần, số {n}", "Weekend festival and cultural events, no. {n}",
     "Mời người dân và du khách tham gia chương trình nghệ thuật tại Quảng trường Ngọ Môn. Sự kiện {n}.",
     "Residents and visitors are invited to the performance at Ngo Mon square. Event {n}.", 7),
)
WARNINGS = (
    ("Cảnh báo lũ trên sông Hương, bản tin {n}", "Flood warning on the Perfume River, bulletin {n}",
     "Mực nước sông Hương tại trạm Kim Long đang lên. Người dân vùng trũng chủ động di dời tài sản. Bản tin {n}.",
     "The Perfume River at Kim Long is rising. Residents of low-lying areas should move belongings up. Bulletin {n}."),
    ("Cảnh báo mưa lớn và nguy cơ sạt lở, bản tin {n}", "Heavy rain and landslide risk, bulletin {n}",
     "Không đi qua các ngầm tràn và khu vực có nguy cơ sạt lở. Bản tin {n}.",
     "Avoid flooded crossings and landslide areas. Bulletin {n}."),
)


def _stamp(city: City, moment: datetime | None) -> Any:
    """A datetime as the product stores it: aware on PostgreSQL, SQLAlchemy's UTC text on SQLite."""
    if moment is None or city.postgres:
        return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _units(city: City) -> tuple[list[str], list[str]]:
    """(communes and wards, departments) of the seeded database."""
    with city.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, kind FROM org_unit ORDER BY id")).all()
    return [i for i, k in rows if k in ("ward", "commune")], [i for i, k in rows if k == "department"]


def load(city: City) -> dict[str, int]:
    """Write the feed items and their target units; returns rows written per table."""
    local, departments = _units(city)
    if not local:
        raise ValueError("no communes or wards: run `superapp seed demo` before loading the city")
    count = city.size(ITEMS)
    warnings = min(count, city.size(WARNINGS_PER_YEAR * YEARS))
    rng = city.rng
    # Busy wards publish several times more than quiet communes.
    weights = [rng.uniform(0.3, 3.0) for _ in local]
    first_id = city.max_id("feed_item") + 1
    start = city.now - timedelta(days=365 * YEARS)
    step = (city.now - start) / count
    warning_every = count / warnings if warnings else float("inf")
    # Targets as two compact arrays (item id, unit index) rather than a list of tuples: 5 bytes each.
    target_items, target_units = array.array("l"), array.array("h")
    pins = set(rng.sample(range(count - count // 50, count), min(LIVE_PINS, count)))

    def items() -> Iterator[tuple[Any, ...]]:
        next_warning = warning_every / 2
        for n in range(count):
            item_id = first_id + n
            published = start + step * (n + 1)
            roll = rng.random()
            miniapp = None
            if n >= next_warning:  # warnings come evenly, 2,450 a year
                next_warning += warning_every
                kind = "warning"
                severity = rng.choices(("info", "warning", "critical"), (5, 4, 1))[0]
                title_vi, title_en, body_vi, body_en = WARNINGS[n % len(WARNINGS)]
                expires: datetime | None = published + timedelta(hours=rng.choice((12, 24, 48)))
                audience = "everyone"
                city_wide = roll < 0.15
                spread = rng.randint(1, 15)
                author = "hue" if city_wide or roll < 0.5 else rng.choice(departments or ["hue"])
                if roll > 0.65:
                    miniapp, author = "floodmap", "hue"
            else:
                kind, severity = "news", "info"
                title_vi, title_en, body_vi, body_en, days = NEWS[n % len(NEWS)]
                expires = published + timedelta(days=days) if days is not None and roll < 0.6 else None
                audience = "everyone" if roll < 0.8 else "residents" if roll < 0.92 else "officials"
                city_wide = rng.random() < 0.3
                spread = 1 if rng.random() < 0.95 else rng.randint(2, 5)
                author = ("hue" if rng.random() < 0.4 else rng.choice(departments or ["hue"])) if city_wide else ""
            pinned = n in pins
            if pinned:  # the city pins its own city-wide news
                city_wide, audience, expires, author = True, "everyone", None, "hue"
            if not city_wide:
                chosen = set(rng.choices(range(len(local)), weights, k=spread))
                for unit in sorted(chosen):
                    target_items.append(item_id)
                    target_units.append(unit)
                if not author:
                    author = local[min(chosen)]  # a ward announcing to its own residents
            withdrawn = published + timedelta(hours=1) if rng.random() < 0.003 and not pinned else None
            yield (
                item_id, _stamp(city, published), kind, severity, audience, author, None, miniapp,
                f"{SYNTHETIC} {title_vi.format(n=item_id)}", f"{SYNTHETIC} {title_en.format(n=item_id)}",
                body_vi.format(n=item_id), body_en.format(n=item_id),
                f"/feed#item-{item_id}" if n % 3 == 0 else None,
                city_wide, pinned, _stamp(city, expires), _stamp(city, withdrawn),
            )

    written = city.copy("feed_item", ITEM_COLUMNS, items())
    city.reset_sequence("feed_item")
    targets = city.copy("feed_item_unit", ("feed_item_id", "unit_id"),
                        ((item, local[unit]) for item, unit in zip(target_items, target_units, strict=True)))
    # Statistics and visibility maps as autovacuum would leave them: the planner needs the first to pick the
    # feed's indexes, index-only scans of feed_item_unit need the second. VACUUM cannot run in a transaction.
    with city.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("feed_item", "feed_item_unit") if city.postgres else ("",):
            connection.execute(text(f"VACUUM ANALYZE {table}" if city.postgres else "ANALYZE"))
    return {"feed_item": written, "feed_item_unit": targets}
