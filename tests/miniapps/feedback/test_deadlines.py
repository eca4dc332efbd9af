"""Working-time deadlines and places: weekends skipped in Hue time; nearest unit; Hue's area."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.units import places
from core.worktime import HUE_TIME
from core.worktime import add_working_hours as working_deadline


def hue(*args: int) -> datetime:
    return datetime(*args, tzinfo=HUE_TIME)


@pytest.mark.parametrize(("start", "hours", "due"), [
    (hue(2026, 11, 23, 9), 72, hue(2026, 11, 26, 9)),  # Monday + 3 working days = Thursday
    (hue(2026, 11, 26, 9), 72, hue(2026, 12, 1, 9)),  # Thursday + 3 = Tuesday (weekend skipped)
    (hue(2026, 11, 27, 18), 24, hue(2026, 11, 30, 18)),  # Friday evening urgent: Monday evening
    (hue(2026, 11, 28, 10), 24, hue(2026, 12, 1, 0)),  # filed on Saturday: the clock starts Monday
    (hue(2026, 11, 23, 23), 2, hue(2026, 11, 24, 1)),  # across midnight
])
def test_working_deadline_skips_weekends(start: datetime, hours: int, due: datetime) -> None:
    assert working_deadline(start, hours) == due.astimezone(UTC)


def test_hue_bounds_and_distance() -> None:
    assert places.in_hue(16.4637, 107.5909) and not places.in_hue(21.0285, 105.8542)
    assert not places.in_hue(16.46, 108.6)  # out at sea
    assert places.distance_m(16.4637, 107.5909, 16.4637 + 0.001, 107.5909) == pytest.approx(111.2, abs=0.5)
