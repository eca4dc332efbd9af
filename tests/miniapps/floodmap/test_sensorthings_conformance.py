"""SensorThings 1.1 conformance: the issue-17 checklist against the served app on SQLite and PostgreSQL,
the classes declared at the service root against the classes the checklist covers, and the query cost
of ``$expand`` (one query per expanded level, however many entities)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from miniapps.floodmap import sensorthings, sta_options, sta_read
from tests.miniapps.floodmap.conftest import make_people
from tests.miniapps.floodmap.sta_checklist import CHECKS, ST, ids_of, run

# the conformance class URI each checklist group stands for
CLASSES = {
    "core": ["datamodel", "resource-path/resource-path-to-entities", "request-data"],
    "filtering": ["request-data"],
    "dataarray": ["data-array/data-array"],
    "multi-datastream": ["multi-datastream"],
    # every set, FeaturesOfInterest and HistoricalLocations included (test_sensorthings_cud.py)
    "create-update-delete": ["create-update-delete"],
    "batch": ["batch-request/batch-request"],
}


def test_every_check_of_the_checklist_passes(fm_app, fm_client) -> None:
    outcome = run(fm_client, ids_of(fm_app.state.engine, make_people(fm_app).operator))
    failed = [(group, name, why) for group, name, passed, why in outcome if not passed]
    assert len(outcome) == len(CHECKS) > 50
    assert not failed, failed


def test_the_declared_classes_are_exactly_those_the_checklist_covers(fm_client) -> None:
    declared = set(fm_client.get(ST).json()["serverSettings"]["conformance"])
    covered = {f"http://www.opengis.net/spec/iot_sensing/1.1/req/{uri}"
               for group, _, _ in CHECKS for uri in CLASSES[group]}
    assert declared == covered == set(sensorthings.CONFORMANCE)


@contextmanager
def _counted(engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "floodmap_" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_expand_costs_one_query_per_level_not_per_entity(fm_app, fm_client) -> None:
    expand = {"$expand": "Datastreams($expand=Observations($top=2;$orderby=phenomenonTime desc),Sensor),Locations"}
    with _counted(fm_app.state.engine) as few:
        small = fm_client.get(f"{ST}/Things", params={"$top": 2, **expand})
    with _counted(fm_app.state.engine) as many:
        large = fm_client.get(f"{ST}/Things", params={"$top": 9, **expand})
    assert small.status_code == large.status_code == 200
    assert len(large.json()["value"]) == 9 and len(small.json()["value"]) == 2
    # Things, Datastreams, their Observations, their Sensor, Locations: five statements either way
    assert len(few) == len(many) == 5, many
    streams = [d for t in large.json()["value"] for d in t["Datastreams"]]
    assert len(streams) >= 7 and all(len(d["Observations"]) == 2 for d in streams)
    assert all(d["Sensor"]["@iot.id"] for d in streams)


def test_query_cost_is_bounded(fm_client) -> None:
    too_deep = fm_client.get(f"{ST}/Things", params={"$expand": "Datastreams/Observations/Datastream/Thing"})
    assert too_deep.status_code == 400 and too_deep.json()["field"] == "query.$expand"
    too_many = fm_client.get(f"{ST}/Observations", params={"$top": sta_options.MAX_TOP + 1})
    assert too_many.status_code == 400 and too_many.json()["field"] == "query.$top"
    wide = fm_client.get(f"{ST}/Datastreams", params={"$top": 1000, "$expand": "Observations($top=1000)"})
    # at most MAX_EXPANDED inlined entities a request: 8 datastreams x 1000 fits, and is answered
    assert wide.status_code == 200
    assert sum(len(d["Observations"]) for d in wide.json()["value"]) <= sta_read.MAX_EXPANDED
