"""Two years of residents' field reports (360,000 at scale 1.0) with their timelines, photo records,
followers, ratings and deadlines, as the feedback mini-app itself would have written them.

Each report is filed by a resident of the commune or ward where it is (``user_account.home_unit_id``),
at a point nearer that unit's centroid than any other (so ``core.units.places.nearest_unit`` agrees),
in a category drawn with realistic weights; the category decides the handling unit and the deadline
(working hours, as ``core.worktime`` counts them). Its handling is simulated step by step from the
filing time (accept, assign, start, resolve, rate or close, sometimes reject, mark duplicate,
transfer or reopen) and cut at ``city.now``: old reports are mostly closed, recent ones are still in
the queue, and a small share is stuck past its deadline (escalated). Every step is a timeline row.
Photos are metadata rows only (their files are not in the media store; opening one answers 404).
"""

from __future__ import annotations

import base64
import bisect
import itertools
import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.city.base import SYNTHETIC, City, CityError
from core.text import fold
from core.units.places import EARTH_RADIUS_M, distance_m, in_hue
from core.worktime import add_working_hours

REPORTS = 360_000  # two years at Hue's 180,000 a year
YEARS = 2
CHUNK = 20_000  # reports generated and copied at a time (their events and photos follow them)

# category -> share of reports (what Hue-S's field reports are about, roughly)
CATEGORY_WEIGHTS = {"roads": 0.20, "lighting": 0.12, "trash": 0.22, "pollution": 0.07, "flooding": 0.08,
                    "public-order": 0.16, "trees": 0.07, "other": 0.08}
DESCRIPTIONS = {
    "roads": ("Ổ gà lớn giữa đường, xe máy dễ ngã", "Vỉa hè bị sụt lún, gạch lát vỡ", "Nắp cống bị vỡ giữa lòng đường"),
    "lighting": ("Đèn đường tắt cả dãy", "Cột đèn nghiêng, dây điện lòng thòng", "Đèn chiếu sáng sáng cả ban ngày"),
    "trash": ("Rác thải tồn đọng nhiều ngày, bốc mùi", "Đổ trộm xà bần ven đường", "Thùng rác công cộng đầy tràn"),
    "pollution": ("Nước thải đen chảy ra sông", "Khói đốt rác gây ô nhiễm khu dân cư", "Tiếng ồn từ xưởng ban đêm"),
    "flooding": ("Đường ngập sâu sau mưa lớn", "Cống thoát nước bị tắc, nước không rút", "Ngập cục bộ trước chợ"),
    "public-order": ("Quán nước lấn chiếm vỉa hè", "Xe đậu chiếm lòng đường", "Bảng quảng cáo che khuất tầm nhìn"),
    "trees": ("Cây xanh nghiêng sắp đổ", "Cành cây gãy đè lên dây điện", "Cây đổ chắn ngang đường"),
    "other": ("Biển báo giao thông bị mất", "Chó thả rông không rọ mõm", "Ghế đá công viên bị hỏng"),
}
RESPONSES = ("Đã xử lý xong, cảm ơn bạn đã phản ánh.", "Đơn vị đã khắc phục, mời bạn kiểm tra lại.",
             "Đã phối hợp với tổ dân phố xử lý dứt điểm.")
REJECT_REASONS = ("Nội dung không thuộc phạm vi xử lý.", "Phản ánh không đúng sự thật.", "Thông tin không đủ để xử lý.")
# 5 stars most often, then 4: Hue-S publishes satisfaction around 80%
STARS = (1, 2, 3, 4, 5)
STAR_WEIGHTS = (0.06, 0.05, 0.12, 0.27, 0.50)
# minutes since midnight, Hue time: people report in the day, most in the morning and after work
HOUR_WEIGHTS = (1, 1, 1, 1, 2, 4, 8, 10, 10, 9, 8, 7, 6, 7, 8, 8, 9, 9, 8, 6, 5, 3, 2, 1)
HUE_OFFSET = timedelta(hours=7)

REPORT_COLUMNS = ("id", "token", "category_id", "description", "address", "lat", "lon", "unit_id",
                  "handling_unit_id", "state", "urgent", "reporter_id", "reporter_contact", "source", "assignee_id",
                  "duplicate_of_id", "response", "reason", "created_at", "updated_at", "due_at", "processed_at",
                  "resolved_at", "escalated_at", "rating", "rating_comment", "rated_at", "search_text")
EVENT_COLUMNS = ("id", "report_id", "at", "actor_id", "actor_role", "action", "from_state", "to_state", "unit_id",
                 "note")
PHOTO_COLUMNS = ("id", "public_id", "report_id", "kind", "key", "width", "height", "sha256", "created_at")
FOLLOWER_COLUMNS = ("report_id", "user_id", "created_at")
OPEN = frozenset({"submitted", "accepted", "assigned", "in_progress", "transferred", "reopened"})


@dataclass
class Unit:
    """A commune or ward: where reports are, who lives there, who works there."""

    id: str
    name_vi: str
    name_en: str
    lat: float
    lon: float
    radius_m: float = 0.0  # points within it are nearer this centroid than any other
    residents: array = field(default_factory=lambda: array("q"))
    officials: list[int] = field(default_factory=list)


@dataclass
class Category:
    """A report category as its row says: handler and deadlines."""

    id: str
    name_vi: str
    name_en: str
    department_id: str | None
    hours: int
    urgent_hours: int


@dataclass
class Step:
    """One timeline line being simulated."""

    at: datetime
    actor_id: int | None
    actor_role: str
    action: str
    from_state: str | None
    to_state: str | None
    unit_id: str
    note: str | None = None


def load(city: City) -> dict[str, int]:
    """Write the reports with their timelines, photos and followers; returns rows written per table."""
    total = city.size(REPORTS)
    units, categories, officials = _reference(city)
    if not units or not categories:
        raise CityError("feedback needs Hue's units and the feedback categories: run superapp db upgrade and "
                        "superapp seed demo first")
    everyone = _residents(city, units)
    generator = _Reports(city, units, categories, officials, everyone, first_id=city.max_id("feedback_report") + 1,
                         first_event=city.max_id("feedback_event") + 1,
                         first_photo=city.max_id("feedback_photo") + 1)
    written = {"feedback_report": 0, "feedback_event": 0, "feedback_photo": 0, "feedback_follower": 0}
    for start in range(0, total, CHUNK):
        reports, events, photos, followers = generator.chunk(start, min(CHUNK, total - start), total)
        written["feedback_report"] += city.copy("feedback_report", REPORT_COLUMNS, reports)
        written["feedback_event"] += city.copy("feedback_event", EVENT_COLUMNS, events)
        written["feedback_photo"] += city.copy("feedback_photo", PHOTO_COLUMNS, photos)
        written["feedback_follower"] += city.copy("feedback_follower", FOLLOWER_COLUMNS, followers)
    for table in ("feedback_report", "feedback_event", "feedback_photo"):
        city.reset_sequence(table)
    if city.postgres:
        with city.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # fresh statistics, or the planner guesses from an empty table's
            connection.execute(text("ANALYZE feedback_report, feedback_event, feedback_photo, feedback_follower"))
    return written


def _reference(city: City) -> tuple[list[Unit], dict[str, Category], dict[str, list[int]]]:
    """The communes and wards with centroids, the active categories, and officials per unit."""
    with city.engine.connect() as connection:
        units = [Unit(*row) for row in connection.execute(text(
            "SELECT id, name_vi, name_en, lat, lon FROM org_unit "
            "WHERE kind IN ('ward', 'commune') AND lat IS NOT NULL AND lon IS NOT NULL ORDER BY id"))]
        categories = {row[0]: Category(*row) for row in connection.execute(text(
            "SELECT id, name_vi, name_en, department_id, deadline_hours, urgent_deadline_hours "
            "FROM feedback_category WHERE active ORDER BY position, id"))}
        officials: dict[str, list[int]] = {}
        for user_id, unit_id in connection.execute(text(
                "SELECT m.user_id, m.unit_id FROM membership m JOIN user_account u ON u.id = m.user_id "
                "WHERE m.role IN ('commune_official', 'department_official') ORDER BY m.user_id")):
            officials.setdefault(unit_id, []).append(user_id)
    for unit in units:
        nearest = min((distance_m(unit.lat, unit.lon, o.lat, o.lon) for o in units if o is not unit), default=4000.0)
        unit.radius_m = 0.45 * nearest
        unit.officials = officials.get(unit.id, [])
    return units, categories, officials


def _residents(city: City, units: list[Unit]) -> array:
    """Fill each unit's resident ids (streamed, 8 bytes each) and return every resident's id."""
    by_id = {unit.id: unit for unit in units}
    everyone = array("q")
    with city.engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=50_000).execute(text(
            "SELECT id, home_unit_id FROM user_account WHERE kind = 'resident' AND is_active ORDER BY id"))
        for user_id, unit_id in rows:
            everyone.append(user_id)
            if unit_id in by_id:
                by_id[unit_id].residents.append(user_id)
    return everyone


class _Reports:
    """Simulates reports one by one; ``chunk`` returns the rows of the next slice of them."""

    def __init__(self, city: City, units: list[Unit], categories: dict[str, Category],
                 officials: dict[str, list[int]], everyone: array, *, first_id: int, first_event: int,
                 first_photo: int) -> None:
        self.city, self.rng, self.units, self.categories = city, city.rng, units, categories
        self.officials, self.everyone = officials, everyone
        self.next_id, self.next_event, self.next_photo = first_id, first_event, first_photo
        # Units weighted by how many residents live there (evenly when nobody lives anywhere yet).
        weights = [len(u.residents) or 1 for u in units] if any(len(u.residents) for u in units) else [1] * len(units)
        self.unit_cumulative = list(itertools.accumulate(weights))
        present = [c for c in CATEGORY_WEIGHTS if c in categories] or list(categories)
        self.category_ids = present
        self.category_cumulative = list(itertools.accumulate(CATEGORY_WEIGHTS.get(c, 0.05) for c in present))
        self.hour_cumulative = list(itertools.accumulate(HOUR_WEIGHTS))
        self.days = 365 * YEARS
        # the last live report per (unit, category): what a duplicate points at
        self.originals: dict[tuple[str, str], tuple[int, int | None]] = {}
        self.following: set[tuple[int, int]] = set()  # (report, resident): a resident follows a report once
        self.folded: dict[tuple[str, str, int], str] = {}
        self.due_cache: dict[tuple[datetime, int], datetime] = {}

    def _pick(self, cumulative: list[float]) -> int:
        return bisect.bisect(cumulative, self.rng.random() * cumulative[-1])

    def _due(self, start: datetime, hours: int) -> datetime:
        # add_working_hours depends on the start's minute only through the weekday walk; cache per minute
        key = (start.replace(second=0, microsecond=0), hours)
        due = self.due_cache.get(key)
        if due is None:
            due = self.due_cache[key] = add_working_hours(key[0], hours)
        return due + (start - key[0])

    def _created(self, index: int, total: int) -> datetime:
        # spread evenly over the two years (reports in id order are in time order), at a daytime hour
        day = self.city.now - timedelta(days=self.days * (total - index) / total)
        local_midnight = (day + HUE_OFFSET).replace(hour=0, minute=0, second=0, microsecond=0) - HUE_OFFSET
        hour = self._pick(self.hour_cumulative)
        return local_midnight + timedelta(hours=hour, seconds=self.rng.randrange(3600))

    def _point(self, unit: Unit) -> tuple[float, float]:
        while True:
            distance = unit.radius_m * math.sqrt(self.rng.random())
            bearing = self.rng.random() * 2 * math.pi
            lat = unit.lat + math.degrees(distance * math.cos(bearing) / EARTH_RADIUS_M)
            lon = unit.lon + math.degrees(distance * math.sin(bearing) / EARTH_RADIUS_M) / math.cos(
                math.radians(unit.lat))
            if in_hue(lat, lon):
                return round(lat, 6), round(lon, 6)

    def _official(self, unit_id: str) -> int | None:
        staff = self.officials.get(unit_id)
        return self.rng.choice(staff) if staff else None

    def _later(self, moment: datetime, mean_hours: float) -> datetime:
        return moment + timedelta(hours=self.rng.expovariate(1 / mean_hours))

    def chunk(self, start: int, count: int, total: int) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
        """Rows of reports ``start`` .. ``start + count`` of ``total``: reports, events, photos, followers."""
        reports: list[tuple] = []
        events: list[tuple] = []
        photos: list[tuple] = []
        followers: list[tuple] = []
        for index in range(start, start + count):
            self._one(index, total, reports, events, photos, followers)
        return reports, events, photos, followers

    def _one(self, index: int, total: int, reports: list[tuple], events: list[tuple], photos: list[tuple],
             followers: list[tuple]) -> None:
        rng, now = self.rng, self.city.now
        report_id = self.next_id
        self.next_id += 1
        unit = self.units[self._pick(self.unit_cumulative)]
        category = self.categories[self.category_ids[self._pick(self.category_cumulative)]]
        handler = category.department_id or unit.id
        created = self._created(index, total)
        urgent = rng.random() < 0.03
        hours = category.urgent_hours if urgent else category.hours
        due = self._due(created, hours)
        open311 = rng.random() < 0.03
        residents = unit.residents or self.everyone
        reporter = None if open311 or not residents else residents[rng.randrange(len(residents))]
        template = rng.randrange(len(DESCRIPTIONS.get(category.id, DESCRIPTIONS["other"])))
        description = f"{SYNTHETIC} {DESCRIPTIONS.get(category.id, DESCRIPTIONS['other'])[template]} (#{report_id})"
        block = rng.randrange(1, 30)
        address = f"{SYNTHETIC} Tổ dân phố {block}, {unit.name_vi}"
        lat, lon = self._point(unit)

        state, steps = "submitted", [Step(created, reporter, "open311" if open311 else "resident", "submitted",
                                          None, "submitted", handler, "urgent" if urgent else None)]
        record: dict[str, Any] = {"assignee": None, "duplicate_of": None, "response": None, "reason": None,
                                  "processed": None, "resolved": None, "escalated": None, "rating": None,
                                  "rated": None, "comment": None}

        def move(at: datetime, actor: int | None, role: str, action: str, to: str, note: str | None = None) -> bool:
            nonlocal state
            if at > now:
                return False  # the simulation has caught up with today: the report stays where it is
            steps.append(Step(at, actor, role, action, state, to, handler, note))
            state = to
            if to in ("resolved", "rejected", "duplicate") and record["processed"] is None:
                record["processed"] = at
            return True

        # Most reports are handled within days; 3% take weeks, and 2% are never resolved (the overdue backlog).
        slow = 40.0 if rng.random() < 0.03 else 1.0
        stuck = rng.random() < 0.02
        moment = self._later(created, 5 * slow)
        fate = rng.random()
        original = self.originals.get((unit.id, category.id))
        if rng.random() < 0.04 and moment <= now:  # sent to the wrong unit: an operator transfers it
            others = [u for u in self.units if u.id != handler]
            handler = rng.choice(others).id if category.department_id is None else unit.id
            move(moment, None, "operator", "transfer", "transferred", "đúng địa bàn")
            due = self._due(moment, hours)
            moment = self._later(moment, 4 * slow)
        if fate < 0.05:
            move(moment, self._official(handler), "official", "reject", "rejected", rng.choice(REJECT_REASONS))
            record["reason"] = steps[-1].note if state == "rejected" else None
        elif fate < 0.10 and original is not None:
            if move(moment, self._official(handler), "official", "duplicate", "duplicate", f"trùng #{original[0]}"):
                record["duplicate_of"] = original[0]
                if reporter is not None and original[1] != reporter and (original[0], reporter) not in self.following:
                    self.following.add((original[0], reporter))
                    followers.append((original[0], reporter, moment))
        else:
            self._handle(move, moment, handler, reporter, slow, stuck, record)
        if state not in ("rejected", "duplicate"):
            self.originals[(unit.id, category.id)] = (report_id, reporter)
        if state == "reopened" or (state in OPEN and any(s.action == "reopen" for s in steps)):
            due = self._due(next(s.at for s in reversed(steps) if s.action == "reopen"), hours)
        # escalated once, 15 minutes after the deadline passed while it was still open
        finished = record["processed"] if state not in OPEN else None
        escalation = due + timedelta(minutes=15)
        if escalation <= now and (finished is None or finished > escalation):
            record["escalated"] = escalation
            steps.append(Step(escalation, None, "system", "escalated", None, None, handler, "overdue"))
        steps.sort(key=lambda s: s.at)
        for step in steps:
            if step.action == "escalated":
                step.from_state = step.to_state = self._state_at(steps, step.at)
            events.append((self.next_event, report_id, step.at, step.actor_id, step.actor_role,
                           step.action, step.from_state, step.to_state, step.unit_id, step.note))
            self.next_event += 1
        for n in range(rng.choices((0, 1, 2, 3), (0.15, 0.45, 0.30, 0.10))[0]):
            photos.append(self._photo(report_id, "report", n, created))
        if record["resolved"] is not None and rng.random() < 0.6:
            photos.append(self._photo(report_id, "resolution", 9, record["resolved"]))
        key = (unit.id, category.id, template)
        folded = self.folded.get(key)
        if folded is None:
            folded = self.folded[key] = fold(" ".join((
                DESCRIPTIONS.get(category.id, DESCRIPTIONS["other"])[template], unit.name_vi, category.name_vi,
                category.name_en, unit.name_vi, unit.name_en)))
        reports.append((
            report_id, f"{rng.getrandbits(128):032x}", category.id, description, address, lat, lon, unit.id,
            handler, state, urgent, reporter, "SYNTHETIC open311 client" if open311 else None,
            "open311:1" if open311 else "app", record["assignee"], record["duplicate_of"], record["response"],
            record["reason"], created, steps[-1].at, due,
            record["processed"], record["resolved"], record["escalated"],
            record["rating"], record["comment"], record["rated"],
            f"{SYNTHETIC.lower()} {folded} to dan pho {block} #{report_id}"[:5000]))

    def _handle(self, move: Any, moment: datetime, handler: str, reporter: int | None, slow: float, stuck: bool,
                record: dict[str, Any]) -> None:
        """The usual path: accept, maybe assign and start, resolve, then rated, reopened or closed by the system."""
        rng = self.rng
        official = self._official(handler)
        if not move(moment, official, "official", "accept", "accepted"):
            return
        if rng.random() < 0.6:
            moment = self._later(moment, 6 * slow)
            record["assignee"] = official
            if not move(moment, official, "official", "assign", "assigned"):
                return
        if rng.random() < 0.8:
            moment = self._later(moment, 10 * slow)
            if not move(moment, official, "official", "start", "in_progress"):
                return
        if stuck:
            return
        for attempt in range(2):
            moment = self._later(moment, 30 * slow)
            response = rng.choice(RESPONSES)
            if not move(moment, official, "official", "resolve", "resolved", response):
                return
            record["response"], record["resolved"] = response, moment
            if attempt == 0 and reporter is not None and rng.random() < 0.03:  # not fixed: the resident reopens
                moment = self._later(moment, 24)
                if not move(moment, reporter, "resident", "reopen", "reopened", "Vẫn chưa được khắc phục"):
                    return
                continue
            break
        if reporter is not None and rng.random() < 0.45:  # the resident rates, which closes it
            moment = self._later(moment, 20)
            stars = rng.choices(STARS, STAR_WEIGHTS)[0]
            comment = f"{SYNTHETIC} {'Cảm ơn' if stars >= 4 else 'Xử lý chậm'}" if rng.random() < 0.3 else None
            if move(moment, reporter, "resident", "rated", "closed", f"{stars}/5"):
                record["rating"], record["comment"], record["rated"] = stars, comment, moment
            return
        move(moment + timedelta(days=7, minutes=rng.randrange(360)), None, "system", "close", "closed",
             "no reply within 7 days")

    @staticmethod
    def _state_at(steps: list[Step], moment: datetime) -> str:
        state = "submitted"
        for step in steps:
            if step.at <= moment and step.to_state and step.action != "escalated":
                state = step.to_state
        return state

    def _photo(self, report_id: int, kind: str, n: int, at: datetime) -> tuple:
        photo_id = self.next_photo
        self.next_photo += 1
        # The random URL id (models.new_photo_id's shape: 22 URL-safe characters), from the seeded generator.
        public_id = base64.urlsafe_b64encode(self.rng.getrandbits(128).to_bytes(16, "big")).rstrip(b"=").decode()
        return (photo_id, public_id, report_id, kind, f"feedback/{report_id}/synthetic-{n}.jpg", 1600, 1200,
                f"{self.rng.getrandbits(256):064x}", at)

