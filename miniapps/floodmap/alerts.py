"""A station's alert level: thresholds with hysteresis, a hold time before falling, a rate-of-rise rule.

Pure logic, no database: ``step`` takes the station's state and one new reading and returns the new
state and, when the level changed, why. Only readings newer than the last one applied move the level
(an out-of-order reading is stored but cannot undo a later one), and nothing here runs without a
reading: missing data never clears an alert (a silent sensor turns *stale*, see ``jobs.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

LEVEL_COLOURS = {0: "#2e7d32", 1: "#f9a825", 2: "#ef6c00", 3: "#c62828"}
STALE_COLOUR = "#757575"
LEVEL_NAMES = {
    0: {"vi": "Bình thường", "en": "Normal"},
    1: {"vi": "Báo động I", "en": "Alarm level I"},
    2: {"vi": "Báo động II", "en": "Alarm level II"},
    3: {"vi": "Báo động III", "en": "Alarm level III"},
}
# A station whose sensor fell silent: its own state, never "normal" (the last level is said beside it).
STALE_NAME = {"vi": "Mất tín hiệu", "en": "No signal"}
# What each kind of station is, in the words residents use.
KIND_NAMES = {
    "river_gauge": {"vi": "Trạm đo mực nước sông", "en": "River gauge"},
    "street_hotspot": {"vi": "Cảm biến ngập đường phố", "en": "Street flood gauge"},
    "rain_gauge": {"vi": "Trạm đo mưa", "en": "Rain gauge"},
    "camera": {"vi": "Camera giám sát ngập", "en": "Flood camera"},
}
# Why a level changed, as the pages say it ({level}: the level's name, {threshold}: its threshold).
REASON_NAMES = {
    "threshold": {"vi": "đạt ngưỡng {level} ({threshold})", "en": "reached the {level} threshold ({threshold})"},
    "rate_of_rise": {"vi": "nước lên nhanh sát ngưỡng {level} ({threshold}): nâng mức sớm",
                     "en": "water rising fast close below the {level} threshold ({threshold}): raised early"},
    "fell": {"vi": "nước rút, giữ dưới ngưỡng đủ thời gian", "en": "water fell and stayed below the threshold"},
    "manual": {"vi": "cán bộ điều hành ban hành", "en": "issued by the operations centre"},
}


def number(value: float, locale: str, digits: int = 2) -> str:
    """A reading as the page's language writes numbers: 1,85 in Vietnamese, 1.85 in English."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return text.replace(".", ",") if locale == "vi" else text


def level_rule(reason: str, level: int, threshold: float | None, unit_symbol: str, locale: str) -> str:
    """Why a station is at ``level``, with the threshold: "đạt ngưỡng Báo động II (2 m)"."""
    words = REASON_NAMES.get(reason, REASON_NAMES["threshold"])[locale]
    limit = f"{number(threshold, locale)} {unit_symbol}".strip() if threshold is not None else "—"
    return words.format(level=LEVEL_NAMES.get(level, LEVEL_NAMES[0])[locale], threshold=limit)


@dataclass(frozen=True)
class AlertRules:
    """A datastream's alarm levels and the rules that keep the level from flapping."""

    thresholds: tuple[float | None, float | None, float | None]
    hysteresis: float = 0.0
    hold_down: timedelta = timedelta(minutes=30)
    rise_per_hour: float | None = None
    rise_near: float | None = None

    def raw_level(self, value: float) -> int:
        """The highest level whose threshold ``value`` reaches, ignoring history."""
        level = 0
        for index, threshold in enumerate(self.thresholds, start=1):
            if threshold is not None and value >= threshold:
                level = index
        return level

    def held_level(self, value: float, current: int) -> int:
        """The level ``value`` supports when the station is at ``current``: up at the threshold,
        down only below threshold minus the hysteresis margin."""
        level = self.raw_level(value)
        for index in range(current, level, -1):
            threshold = self.thresholds[index - 1]
            if threshold is not None and value >= threshold - self.hysteresis:
                return index
        return level


    def quiet_band(self, level: int) -> tuple[float, float] | None:
        """Values in ``[low, high)`` leave a station at ``level``, with no lower level pending, exactly
        where it is (no threshold reached, none left, no fast rise possible); None when no value does.

        A batch of calm readings is then judged at once instead of reading by reading.
        """
        low = -math.inf
        if level > 0:
            threshold = self.thresholds[level - 1]
            if threshold is None:
                return None
            low = threshold - self.hysteresis
        above = [t for t in self.thresholds[level:] if t is not None]
        high = min(above, default=math.inf)
        upcoming = self.thresholds[level] if level < len(self.thresholds) else None
        if self.rise_per_hour is not None and self.rise_near is not None and upcoming is not None and level < 3:
            high = min(high, upcoming - self.rise_near)
        return (low, high) if low < high else None


@dataclass(frozen=True)
class AlertState:
    """Where a station stands: its level and a lower level that is waiting out the hold time."""

    level: int = 0
    last_at: datetime | None = None
    lowering_to: int | None = None
    lowering_since: datetime | None = None


@dataclass(frozen=True)
class LevelChange:
    """A level changed: from, to, why (``threshold``, ``rate_of_rise`` or ``fell``), at which reading."""

    from_level: int
    to_level: int
    reason: str
    value: float
    at: datetime

    @property
    def rising(self) -> bool:
        """True when the level went up (residents are warned)."""
        return self.to_level > self.from_level


def step(rules: AlertRules, state: AlertState, *, value: float, at: datetime,
         previous: tuple[datetime, float] | None = None) -> tuple[AlertState, LevelChange | None]:
    """Apply one reading; ``previous`` is an earlier (time, value) for the rate-of-rise rule."""
    if state.last_at is not None and at <= state.last_at:
        return state, None  # late or repeated: stored elsewhere, never moves the level back in time
    target = rules.held_level(value, state.level)
    fast = _rising_fast(rules, state.level, target, value, at, previous)
    if target == state.level and state.lowering_since is None and not fast:
        return AlertState(level=state.level, last_at=at), None  # the common case: nothing moves
    reason = "threshold"
    if fast:
        target, reason = target + 1, "rate_of_rise"
    state = replace(state, last_at=at)
    if target > state.level:
        change = LevelChange(state.level, target, reason, value, at)
        return AlertState(level=target, last_at=at), change
    if target == state.level:
        return replace(state, lowering_to=None, lowering_since=None), None
    # Lower: wait until the water has stayed low for the hold time (the lowest level seen in the wait
    # does not count; the level that held throughout does).
    if state.lowering_since is None:
        state = replace(state, lowering_to=target, lowering_since=at)
    else:
        state = replace(state, lowering_to=max(target, state.lowering_to or 0))
    if at - state.lowering_since >= rules.hold_down:
        new_level = state.lowering_to or 0
        change = LevelChange(state.level, new_level, "fell", value, at)
        return AlertState(level=new_level, last_at=at), change
    return state, None


def _rising_fast(rules: AlertRules, level: int, target: int, value: float, at: datetime,
                 previous: tuple[datetime, float] | None) -> bool:
    """A fast rise close below the next threshold counts as reaching it."""
    if rules.rise_per_hour is None or rules.rise_near is None or previous is None or target >= 3:
        return False
    if target < level:
        return False
    upcoming = rules.thresholds[target] if target < len(rules.thresholds) else None
    if upcoming is None or value < upcoming - rules.rise_near:
        return False
    hours = (at - previous[0]).total_seconds() / 3600
    if hours <= 0:
        return False
    return (value - previous[1]) / hours >= rules.rise_per_hour and target + 1 > level
