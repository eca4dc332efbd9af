"""The alert level of a station: thresholds, hysteresis, hold time, rate of rise, late readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from miniapps.floodmap.alerts import AlertRules, AlertState, step

KIM_LONG = AlertRules(thresholds=(1.0, 2.0, 3.5), hysteresis=0.1, hold_down=timedelta(minutes=30),
                      rise_per_hour=0.3, rise_near=0.3)
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def run(rules: AlertRules, values: list[float], *, every: timedelta = timedelta(minutes=10),
        state: AlertState | None = None):
    """Feed ``values`` ``every`` apart (no rate-of-rise base); returns the final state and the changes."""
    state = state or AlertState()
    changes = []
    for i, value in enumerate(values):
        state, change = step(rules, state, value=value, at=T0 + every * i)
        if change is not None:
            changes.append(change)
    return state, changes


def test_levels_follow_the_thresholds_up() -> None:
    state, changes = run(KIM_LONG, [0.5, 1.0, 1.5, 2.0, 3.6])
    assert state.level == 3
    assert [(c.from_level, c.to_level) for c in changes] == [(0, 1), (1, 2), (2, 3)]
    assert all(c.reason == "threshold" for c in changes)


def test_readings_wobbling_around_level_two_raise_it_once() -> None:
    state, changes = run(KIM_LONG, [1.95, 2.01, 1.96, 2.02, 1.93, 2.0, 1.97, 2.03])
    assert [(c.from_level, c.to_level) for c in changes] == [(0, 1), (1, 2)]
    assert state.level == 2


def test_a_level_falls_only_below_the_margin_and_after_the_hold_time() -> None:
    state, _ = run(KIM_LONG, [2.2])
    # just under the threshold but within the margin: stays
    state, changes = run(KIM_LONG, [1.95, 1.92], state=state)
    assert state.level == 2 and not changes
    # below 2.0 - 0.1 for 20 minutes: not yet (hold time 30 minutes)
    later = AlertState(level=2, last_at=T0)
    state, change = step(KIM_LONG, later, value=1.8, at=T0 + timedelta(minutes=10))
    assert change is None and state.level == 2 and state.lowering_to == 1
    state, change = step(KIM_LONG, state, value=1.8, at=T0 + timedelta(minutes=30))
    assert change is None and state.level == 2
    state, change = step(KIM_LONG, state, value=1.8, at=T0 + timedelta(minutes=40))
    assert change is not None and (change.from_level, change.to_level, change.reason) == (2, 1, "fell")


def test_a_rise_during_the_hold_time_cancels_the_fall() -> None:
    state = AlertState(level=2, last_at=T0)
    state, _ = step(KIM_LONG, state, value=1.8, at=T0 + timedelta(minutes=10))
    state, change = step(KIM_LONG, state, value=2.05, at=T0 + timedelta(minutes=20))
    assert change is None and state.lowering_to is None
    state, change = step(KIM_LONG, state, value=1.8, at=T0 + timedelta(minutes=45))
    assert change is None and state.level == 2  # the hold time starts again


def test_a_fast_rise_near_the_next_level_raises_early() -> None:
    state = AlertState(level=1, last_at=T0)
    state, change = step(KIM_LONG, state, value=1.75, at=T0 + timedelta(minutes=30),
                         previous=(T0, 1.45))  # 0.6 m an hour, 0.25 m below level II
    assert change is not None and (change.to_level, change.reason) == (2, "rate_of_rise")


def test_a_slow_rise_near_the_next_level_does_not() -> None:
    state = AlertState(level=1, last_at=T0)
    state, change = step(KIM_LONG, state, value=1.75, at=T0 + timedelta(minutes=60), previous=(T0, 1.6))
    assert change is None and state.level == 1


def test_a_late_reading_never_moves_the_level() -> None:
    state, _ = run(KIM_LONG, [2.5])
    state, change = step(KIM_LONG, state, value=0.2, at=T0 - timedelta(hours=1))
    assert change is None and state.level == 2
