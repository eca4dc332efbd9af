"""Two years of notification history: warnings and announcements broadcast to units, roles or the city
(stored once, with their ``notification_audience`` rows), personal notices (one ``inbox_item`` each),
and the "all read" marks (``inbox_state``) of residents who use "mark all read".

Notification ids follow time, as the notifier writes them, so a resident's inbox (ordered by id) mixes
broadcasts and personal notices as it would in life. Personal notices come from a Poisson process per
chosen resident; the superposition of those processes is generated directly in time order, so nothing
is sorted and memory grows only with the chosen residents, not with the notices.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from bench.city.base import SYNTHETIC, City, CityError
from core.identity.models import User, UserKind

YEARS = 2
BROADCASTS_PER_YEAR = 2_450  # Hue's warnings a year (the figure)
PERSONAL_SHARE = 0.20  # residents who get personal notices (report updates, service results)
PERSONAL_PER_YEAR = 2.0  # notices a year for each of them
MARK_ALL_READ_SHARE = 0.25  # residents who have used "mark all read" at least once
READ_SHARE = 0.85  # personal notices opened in the end
DAY = 86_400.0
YEAR = 365 * DAY

# Hue's rainy season (September to December) brings most flood warnings.
_FLOOD_MONTH_WEIGHTS = (4, 2, 2, 2, 3, 3, 3, 4, 12, 25, 28, 12)


@dataclass(frozen=True)
class Kind:
    """A kind of notice: who sends it, on which topic, how urgent, what it says."""

    miniapp: str
    topic: str
    severity: str
    title_vi: str
    title_en: str
    body_vi: str
    body_en: str
    url: str | None = None


def _kind(miniapp: str, topic: str, severity: str, vi: tuple[str, str], en: tuple[str, str],
          url: str | None = None) -> Kind:
    return Kind(miniapp, topic, severity, f"{SYNTHETIC} {vi[0]}", f"{SYNTHETIC} {en[0]}",
                f"{SYNTHETIC} {vi[1]}", f"{SYNTHETIC} {en[1]}", url)


FLOOD = (
    _kind("floodmap", "flood_warnings", "warning",
          ("Cảnh báo ngập: mực nước sông Hương đang lên", ("Mực nước tại trạm Kim Long vượt báo động II. "
           "Hạn chế đi lại qua vùng trũng, kê cao tài sản.")),
          ("Flood warning: the Perfume River is rising", ("The Kim Long gauge is above alarm level II. "
           "Avoid low-lying roads and raise your belongings.")), "/m/floodmap/"),
    _kind("floodmap", "flood_warnings", "critical",
          ("Khẩn cấp: báo động III, rời khỏi vùng trũng", ("Mực nước vượt báo động III. Di chuyển đến nơi "
           "an toàn theo hướng dẫn của chính quyền địa phương.")),
          ("Emergency: alarm level III, leave low-lying areas", ("The water is above alarm level III. Move to "
           "safety as your commune or ward directs.")), "/m/floodmap/"),
)
WEATHER = (
    _kind("core", "warnings", "warning",
          ("Cảnh báo mưa lớn và gió mạnh", "Dự báo mưa 100-200 mm trong 24 giờ tới, gió giật cấp 7."),
          ("Heavy rain and strong wind warning", ("100-200 mm of rain expected in the next 24 hours, "
           "gusts of force 7.")), "/feed"),
    _kind("core", "warnings", "warning",
          ("Nguy cơ sạt lở đất", "Đất đã bão hòa nước; không đi qua các taluy và đèo dốc."),
          ("Landslide risk", "The ground is saturated; keep away from cut slopes and mountain passes."), "/feed"),
    _kind("core", "warnings", "critical",
          ("Bão mạnh đổ bộ: ở trong nhà", "Bão đổ bộ trong đêm nay. Không ra khỏi nhà, chằng chống nhà cửa."),
          ("A strong storm makes landfall: stay indoors", ("The storm reaches the coast tonight. Stay inside and "
           "secure your house.")), "/feed"),
)
ANNOUNCEMENTS = (
    _kind("core", "announcements", "info",
          ("Lịch tạm ngừng cấp điện", "Tạm ngừng cấp điện từ 7:00 đến 11:00 để bảo trì lưới điện."),
          ("Planned power cut", "Power will be off from 7:00 to 11:00 for grid maintenance."), "/feed"),
    _kind("core", "announcements", "info",
          ("Lịch tiêm chủng mở rộng", "Trạm y tế tổ chức tiêm chủng cho trẻ em vào sáng thứ Bảy."),
          ("Vaccination day", "The health station vaccinates children on Saturday morning."), "/feed"),
)
OFFICIAL_NOTICES = (
    _kind("core", "announcements", "info",
          ("Họp giao ban trực tuyến", "Cuộc họp giao ban với các xã, phường bắt đầu lúc 14:00."),
          ("Online briefing", "The briefing with the communes and wards starts at 14:00."), "/feed"),
)
PERSONAL = (
    _kind("feedback", "report_updates", "info",
          ("Phản ánh của bạn đã được tiếp nhận", "Đơn vị phụ trách đã tiếp nhận phản ánh và sẽ xử lý."),
          ("Your report was received", "The unit in charge received your report and will handle it."),
          "/m/feedback/"),
    _kind("feedback", "report_updates", "info",
          ("Phản ánh của bạn đã được xử lý xong", "Mời bạn xem kết quả và đánh giá mức độ hài lòng."),
          ("Your report was resolved", "See the outcome and rate how satisfied you are."), "/m/feedback/"),
    _kind("core", "announcements", "info",
          ("Hồ sơ dịch vụ công của bạn đã có kết quả", "Mời bạn nhận kết quả tại bộ phận một cửa."),
          ("Your public service application is ready", "Collect the result at the one-stop desk."), "/feed"),
)


@dataclass(frozen=True)
class Broadcast:
    """One broadcast: when, what, and the audience keys it goes to."""

    at: float
    kind: Kind
    units: tuple[str, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()
    city: bool = False

    def audiences(self) -> list[str]:
        """Its ``notification_audience`` keys, as the notifier writes them."""
        return (["city"] if self.city else []) + [f"unit:{u}" for u in self.units] + [
            f"role:{r}:{u}" for r, u in self.roles]

    def target(self) -> str:
        """The notification's ``target`` record, as the notifier describes an audience."""
        return json.dumps({"users": 0, "units": list(self.units), "roles": [list(r) for r in self.roles],
                           "city": self.city})


@dataclass(frozen=True)
class Personal:
    """One personal notice: when, to whom, what, and when it was read (None: still unread)."""

    at: float
    user_id: int
    kind: Kind
    read_at: float | None


def load(city: City) -> dict[str, int]:
    """Load two years of broadcasts with their audiences, personal notices and "all read" marks."""
    with city.engine.connect() as connection:
        if connection.execute(text("SELECT 1 FROM notification WHERE title_en LIKE :mark LIMIT 1"),
                              {"mark": f"{SYNTHETIC}%"}).first():
            raise CityError("this database already holds the synthetic notification history; "
                            "start from an empty database to load it again")
    end = city.now.timestamp()
    start = end - YEARS * YEAR
    units, devices_by_unit = _units(city)
    broadcasts = _broadcasts(city, units, start, end)
    recipients, starts = _personal_recipients(city, start)
    timeline_seed = city.rng.getrandbits(64)
    first_id = city.max_id("notification") + 1

    def timeline() -> Iterator[Broadcast | Personal]:
        # The same seed gives the same timeline on each pass, so ids agree between the tables.
        return _timeline(random.Random(timeline_seed), broadcasts, recipients, starts, start, end)

    moments = array("d")  # each notification's time, by id - first_id: for the "all read" marks
    written = {"notification": city.copy("notification", (
        "id", "created_at", "miniapp", "topic", "severity", "title_vi", "title_en", "body_vi", "body_en", "url",
        "data", "target", "delivery"), _notification_rows(timeline(), first_id, moments, devices_by_unit))}
    city.reset_sequence("notification")
    written["notification_audience"] = city.copy(
        "notification_audience", ("notification_id", "audience", "created_at"),
        ((first_id + n, audience, _at(event.at)) for n, event in enumerate(timeline())
         if isinstance(event, Broadcast) for audience in event.audiences()))
    written["inbox_item"] = city.copy(
        "inbox_item", ("user_id", "notification_id", "created_at", "read_at", "personal"),
        ((event.user_id, first_id + n, _at(event.at), _at(event.read_at) if event.read_at else None, True)
         for n, event in enumerate(timeline()) if isinstance(event, Personal)))
    written["inbox_state"] = city.copy("inbox_state", ("user_id", "read_through", "updated_at"),
                                       _read_marks(city, moments, first_id))
    return written


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _units(city: City) -> tuple[list[str], dict[str, int]]:
    """The communes and wards, and the active devices of each one's residents (for delivery records)."""
    with city.engine.connect() as connection:
        units = list(connection.execute(text(
            "SELECT id FROM org_unit WHERE kind IN ('ward', 'commune') ORDER BY id")).scalars())
        devices = dict(connection.execute(text(
            "SELECT u.home_unit_id, COUNT(*) FROM device d JOIN user_account u ON u.id = d.user_id "
            "WHERE d.active AND u.home_unit_id IS NOT NULL GROUP BY u.home_unit_id")).all())
    return units, {unit: int(count) for unit, count in devices.items()}


def _broadcasts(city: City, units: Sequence[str], start: float, end: float) -> list[Broadcast]:
    """The warnings and announcements of the period, in time order."""
    rng = city.rng
    made = []
    for _ in range(city.size(YEARS * BROADCASTS_PER_YEAR)):
        share = rng.random()
        if share < 0.40:  # floods hit many units at once, mostly in the rainy season
            at = _in_month(rng, start, end, rng.choices(range(12), _FLOOD_MONTH_WEIGHTS)[0])
            kind = FLOOD[1] if rng.random() < 0.25 else FLOOD[0]
            made.append(Broadcast(at, kind, tuple(rng.sample(units, min(len(units), rng.randint(2, 15))))))
        elif share < 0.75:
            at = rng.uniform(start, end)
            kind = WEATHER[2] if rng.random() < 0.10 else rng.choice(WEATHER[:2])
            if rng.random() < 0.08:
                made.append(Broadcast(at, kind, city=True))
            else:
                made.append(Broadcast(at, kind, tuple(rng.sample(units, min(len(units), rng.randint(1, 5))))))
        elif share < 0.90:
            at = rng.uniform(start, end)
            kind = rng.choice(ANNOUNCEMENTS)
            if rng.random() < 0.20:
                made.append(Broadcast(at, kind, city=True))
            else:
                made.append(Broadcast(at, kind, tuple(rng.sample(units, min(len(units), rng.randint(1, 3))))))
        else:  # to the commune officials of some units
            at = rng.uniform(start, end)
            chosen = rng.sample(units, min(len(units), rng.randint(1, 15)))
            made.append(Broadcast(at, OFFICIAL_NOTICES[0], roles=tuple(("commune_official", u) for u in chosen)))
    made.sort(key=lambda broadcast: broadcast.at)
    return made


def _in_month(rng: random.Random, start: float, end: float, month: int) -> float:
    """A random moment in the given month (0 = January) of one of the period's years."""
    while True:
        at = rng.uniform(start, end)
        if datetime.fromtimestamp(at, UTC).month - 1 == month:
            return at


def _personal_recipients(city: City, start: float) -> tuple[array, array]:
    """The residents who get personal notices, ordered by when they can first get one (the later of
    sign-up and the period's start): their ids and those moments."""
    rng = city.rng
    chosen: list[tuple[float, int]] = []
    query = select(User.id, User.created_at).where(User.kind == UserKind.resident).order_by(User.id)
    with city.engine.connect() as connection:
        for user_id, created_at in connection.execution_options(yield_per=10_000).execute(query):
            if rng.random() < PERSONAL_SHARE:
                chosen.append((max(start, created_at.timestamp()), user_id))
    chosen.sort()
    return array("q", (user_id for _, user_id in chosen)), array("d", (at for at, _ in chosen))


def _timeline(rng: random.Random, broadcasts: Sequence[Broadcast], recipients: array, starts: array,
              start: float, end: float) -> Iterator[Broadcast | Personal]:
    """Broadcasts and personal notices merged in time order.

    Personal notices: each recipient receives PERSONAL_PER_YEAR a year from their start, a Poisson
    process; the superposition of k such processes is one with k times the rate whose every event goes
    to one of the k at random. k only grows (recipients are ordered by start), and the process is
    memoryless, so on reaching the next recipient's start we simply restart from there.
    """
    rate = PERSONAL_PER_YEAR / YEAR
    pending = iter(broadcasts)
    upcoming = next(pending, None)
    now = start
    while True:
        active = bisect.bisect_right(starts, now)
        if active == 0:
            if not starts:
                break
            now = starts[0]
            continue
        at = now + rng.expovariate(rate * active)
        if active < len(starts) and at > starts[active]:
            now = starts[active]
            continue
        if at >= end:
            break
        while upcoming is not None and upcoming.at <= at:
            yield upcoming
            upcoming = next(pending, None)
        kind = rng.choice(PERSONAL)
        read_at = at + rng.expovariate(1 / (8 * 3_600)) if rng.random() < READ_SHARE else None
        yield Personal(at, recipients[rng.randrange(active)], kind, read_at if read_at and read_at < end else None)
        now = at
    while upcoming is not None:
        yield upcoming
        upcoming = next(pending, None)


def _notification_rows(events: Iterator[Broadcast | Personal], first_id: int, moments: array,
                       devices_by_unit: dict[str, int]) -> Iterator[tuple[Any, ...]]:
    """``notification`` rows in id order; records each one's time in ``moments``."""
    all_devices = sum(devices_by_unit.values())
    for n, event in enumerate(events):
        moments.append(event.at)
        kind = event.kind
        if isinstance(event, Broadcast):
            target = event.target()
            devices = all_devices if event.city else sum(devices_by_unit.get(u, 0) for u in event.units)
            if event.roles:
                devices = len(event.roles)  # about one official's phone per unit
        else:
            target = '{"users": 1, "units": [], "roles": [], "city": false}'
            devices = 1
        planned = _at(event.at + 2).isoformat()
        delivery = json.dumps({"status": "planned", "devices": devices, "jobs": math.ceil(devices / 500),
                               "planned_at": planned})
        yield (first_id + n, _at(event.at), kind.miniapp, kind.topic, kind.severity, kind.title_vi,
               kind.title_en, kind.body_vi, kind.body_en, kind.url, "{}", target, delivery)


def _read_marks(city: City, moments: array, first_id: int) -> Iterator[tuple[Any, ...]]:
    """``inbox_state`` rows: for some residents, "all read" up to a recent moment after they joined."""
    rng = city.rng
    end = city.now.timestamp()
    query = select(User.id, User.created_at).where(User.kind == UserKind.resident).order_by(User.id)
    with city.engine.connect() as connection:
        for user_id, created_at in connection.execution_options(yield_per=10_000).execute(query):
            if rng.random() >= MARK_ALL_READ_SHARE:
                continue
            # When they last pressed "mark all read": usually in the last weeks.
            pressed = min(end, max(created_at.timestamp(), end - rng.expovariate(1 / (30 * DAY))))
            newest = bisect.bisect_right(moments, pressed)  # notifications stored by then
            if newest:
                yield user_id, first_id + newest - 1, _at(pressed)

