"""FROST's own SensorThings client (frost_sta_client, the Fraunhofer reference client) makes the ordinary
calls against the served app over loopback HTTP: list Things, Datastreams and Observations with $filter,
$orderby and $top, $expand, find one entity, follow its navigation, and create an Observation as a
keyed sensor (HTTP Basic, the client's own auth handler) that the ingest rules accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import frost_sta_client as fsc
import pytest
import requests

from miniapps.floodmap.demo import demo_key
from tests.browser import serve
from tests.miniapps.floodmap.conftest import KIM_LONG


def _first_page(query) -> list:
    """The entities of the first page only (iterating an EntityList follows every nextLink)."""
    return list(query.list().entities)


def test_frost_client_reads_and_a_keyed_sensor_creates_an_observation(fm_app) -> None:
    kim_long = fm_app.state.test_stations[KIM_LONG]
    with serve(fm_app) as base:
        service = fsc.SensorThingsService(f"{base}/api/miniapps/floodmap/v1.1")
        things = _first_page(service.things().query().top(5))
        assert len(things) == 5 and all(t.name for t in things)
        streams = _first_page(service.datastreams().query().filter("unitOfMeasurement/symbol eq 'm'"))
        assert streams and all(s.unit_of_measurement.symbol == "m" for s in streams)
        [stream] = [s for s in streams if s.id == _first_page(
            service.things().find(kim_long).get_datastreams().query())[0].id]
        # the client sends upper-case DESC
        latest = _first_page(stream.get_observations().query().filter("result gt 0")
                             .orderby("phenomenonTime", "DESC").top(3))
        times = [o.phenomenon_time for o in latest]
        assert len(latest) == 3 and times == sorted(times, reverse=True)
        expanded = _first_page(service.things().query().expand("Locations,Datastreams").top(3))
        assert all(len(t.locations.entities) == 1 for t in expanded)
        assert any(len(t.datastreams.entities) == 1 for t in expanded)
        thing = service.things().find(kim_long)
        assert thing.properties["code"] == KIM_LONG
        assert _first_page(service.multi_datastreams().query())[0].name.startswith("Water level and temperature")
        assert _first_page(service.features_of_interest().query().top(1))[0].feature["type"] == "Point"
        assert _first_page(service.historical_locations().query().top(1))[0].time.endswith("Z")

        service.auth_handler = fsc.AuthHandler(username=KIM_LONG, password=demo_key(KIM_LONG))
        when = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)
        reading = fsc.Observation(result=0.77, phenomenon_time=when.isoformat(), datastream=stream)
        service.create(reading)
        assert reading.id is not None
        stored = service.observations().find(reading.id)
        assert stored.result == 0.77
        # the ingest rules refuse an impossible reading; the client raises the server's error
        service_wrong = fsc.Observation(result=40.0, phenomenon_time=(when + timedelta(seconds=30)).isoformat(),
                                        datastream=stream)
        with pytest.raises(requests.exceptions.HTTPError):
            service.create(service_wrong)
        service.auth_handler = fsc.AuthHandler(username=KIM_LONG, password="fm_wrong")
        with pytest.raises(requests.exceptions.HTTPError):
            service.create(fsc.Observation(result=0.7, phenomenon_time=when.isoformat(), datastream=stream))
