"""Domain events reach every subscriber; one failing subscriber affects nobody else."""

import asyncio
from typing import ClassVar

from core.events import EventBus
from plugins.events import DomainEvent
from plugins.registry import EventSubscriber


class ReportFiled(DomainEvent):
    name: ClassVar[str] = "tests.report_filed"
    report_id: int


class UrgentReportFiled(ReportFiled):
    name: ClassVar[str] = "tests.urgent_report_filed"


async def test_every_subscriber_runs_even_when_one_fails(caplog) -> None:
    seen: list[tuple[str, int]] = []

    def sync_handler(event, host):
        seen.append(("sync", event.report_id))

    async def async_handler(event, host):
        await asyncio.sleep(0)
        seen.append(("async", event.report_id))

    def broken(event, host):
        raise RuntimeError("subscriber bug")

    bus = EventBus([
        EventSubscriber(ReportFiled, broken, "buggy"),
        EventSubscriber(ReportFiled, sync_handler, "a"),
        EventSubscriber(ReportFiled, async_handler, "b"),
    ])
    delivered = await bus.publish(ReportFiled(report_id=7))
    assert delivered == 2
    assert sorted(seen) == [("async", 7), ("sync", 7)]
    assert bus.failures == {"buggy:test_every_subscriber_runs_even_when_one_fails.<locals>.broken": 1}
    assert "event subscriber failed" in caplog.text


async def test_subscribers_of_a_base_class_receive_subclass_events() -> None:
    got: list[str] = []
    bus = EventBus([EventSubscriber(ReportFiled, lambda e, h: got.append(e.name), "a")])
    await bus.publish(UrgentReportFiled(report_id=1))
    assert got == ["tests.urgent_report_filed"]
    assert await bus.publish(DomainEvent()) == 0


def test_failing_subscriber_does_not_fail_the_request(client) -> None:
    """Through the app: the festival's subscriber ran at start-up and the host still serves."""
    assert client.app.state.events.failures == {}
    assert client.get("/healthz").status_code == 200
