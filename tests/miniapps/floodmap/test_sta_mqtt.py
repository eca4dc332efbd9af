"""SensorThings MQTT "receive updates" against a real broker (Mosquitto, ``SUPERAPP_TEST_MQTT_URL``, by default
mqtt://127.0.0.1:1883; skipped when none answers, failed under CI=true): a reading pushed over HTTP arrives,
as the HTTP API answers it, on each standard topic; writes through SensorThings do too; a broker that is
down never fails a request and its dropped changes are counted; a bad broker URL stops start-up.

Tests on other workers or machines may publish on the same broker: a test waits for the message whose
payload is the entity it made (a time to the second, a unique description), never for "the next one"."""

from __future__ import annotations

import json
import os
import queue
import random
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from miniapps.floodmap import sensorthings, sta_mqtt
from miniapps.floodmap.demo import demo_key
from plugins import ContractError
from tests.conftest import base_settings, require
from tests.miniapps.floodmap.conftest import KIM_LONG, load_stations, make_people, push

TEST_MQTT_URL = os.environ.get("SUPERAPP_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
ST = "/api/miniapps/floodmap/v1.1"
WAIT = 15.0  # seconds a message may take before the test fails (it arrives in milliseconds)


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 1883), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def mqtt_url() -> str:
    """The test broker; skipped when none answers (a failure under CI=true)."""
    require(_broker_answers(TEST_MQTT_URL), f"an MQTT broker (SUPERAPP_TEST_MQTT_URL={TEST_MQTT_URL})")
    return TEST_MQTT_URL


class Subscriber:
    """A real MQTT client subscribed to ``topics`` (QoS 1), keeping every message it receives."""

    def __init__(self, url: str, topics: list[str]) -> None:
        parts = urlsplit(url)
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []
        subscribed = queue.Queue[int]()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}")
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
        self.client.connect(parts.hostname or "", parts.port or 1883)
        self.client.loop_start()
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert subscribed.get(timeout=WAIT) == mid  # subscribed before anything is published

    def wait_for(self, topic: str, payload: Any) -> None:
        """Until ``payload`` arrived on ``topic`` (fails after WAIT seconds, naming what did arrive)."""
        deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
        while (topic, payload) not in self.seen:
            left = (deadline - datetime.now(UTC)).total_seconds()
            try:
                self.seen.append(self.messages.get(timeout=max(left, 0.01)))
            except queue.Empty:
                pytest.fail(f"nothing like {payload} on {topic}; got {[t for t, _ in self.seen]}")

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def _app(database_url: str, tmp_path: Any) -> Any:
    app = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var"))
    app.state.test_stations = load_stations(app)
    return app


@pytest.fixture
def mqtt_client(monkeypatch, mqtt_url, database_url, tmp_path) -> Iterator[TestClient]:
    """A flood map host publishing to the test broker, on SQLite then PostgreSQL."""
    monkeypatch.setenv("SUPERAPP_FLOODMAP_MQTT_URL", mqtt_url)
    app = _app(database_url, tmp_path)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        sta_mqtt.stop(app.state.host)


def _unique_time() -> str:
    """A reading time to the second within the last hour, unlikely to be another test's, and never on a whole
    minute, where the demo stations' seeded readings are (a duplicate would not be stored)."""
    when = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=random.randint(1, 58))
    return (when + timedelta(seconds=random.randint(1, 59))).isoformat().replace("+00:00", "Z")


def test_a_pushed_reading_arrives_on_each_standard_topic_as_the_http_api_answers_it(mqtt_client, mqtt_url) -> None:
    thing = mqtt_client.app.state.test_stations[KIM_LONG]
    stream = mqtt_client.get(f"{ST}/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    listener = Subscriber(mqtt_url, ["v1.1/Observations", "v1.1/+/Observations"])
    try:
        when = _unique_time()
        answer = push(mqtt_client, KIM_LONG, {"time": when, "value": 0.6})
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        [observation] = mqtt_client.get(f"{ST}/Datastreams({stream})/Observations",
                                        params={"$filter": f"phenomenonTime eq {when}"}).json()["value"]
        feature = mqtt_client.get(f"{ST}/Observations({observation['@iot.id']})/FeatureOfInterest").json()
        assert observation["@iot.selfLink"].startswith("http://testserver/api/miniapps/floodmap/v1.1/")
        for topic in ("v1.1/Observations", f"v1.1/Datastreams({stream})/Observations",
                      f"v1.1/FeaturesOfInterest({feature['@iot.id']})/Observations"):
            listener.wait_for(topic, observation)
    finally:
        listener.close()


def test_each_of_a_run_of_readings_arrives_and_the_time_it_took_is_printed(mqtt_client, mqtt_url) -> None:
    """30 readings one after another, each waited for on its Datastream's topic; the time from sending the POST to
    the message's arrival is printed (``pytest -s``: the figure docs/floodmap.md quotes), never asserted."""
    thing = mqtt_client.app.state.test_stations[KIM_LONG]
    stream = mqtt_client.get(f"{ST}/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    topic = f"v1.1/Datastreams({stream})/Observations"
    listener = Subscriber(mqtt_url, [topic])
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=59)
    took: list[float] = []
    answered: list[float] = []
    try:
        for n in range(30):
            # never on a whole minute, where the demo's seeded readings are
            when = (start + timedelta(seconds=random.randint(1, 59) + 60 * n)).isoformat().replace("+00:00", "Z")
            sent = time.perf_counter()
            assert push(mqtt_client, KIM_LONG, {"time": when, "value": 0.6}).json()["accepted"] == 1
            answered.append((time.perf_counter() - sent) * 1000)
            while True:
                arrived_topic, body = listener.messages.get(timeout=WAIT)
                if arrived_topic == topic and body["phenomenonTime"] == when:
                    took.append((time.perf_counter() - sent) * 1000)
                    break
    finally:
        listener.close()
    took.sort()
    answered.sort()
    print(f"[mqtt] POST /ingest -> message on {topic}: median {took[len(took) // 2]:.1f} ms, "
          f"p90 {took[int(len(took) * 0.9)]:.1f} ms, max {took[-1]:.1f} ms over {len(took)} readings "
          f"(the POST's own answer: median {answered[len(answered) // 2]:.1f} ms)")


def test_sensorthings_writes_publish_new_and_changed_entities(mqtt_client, mqtt_url) -> None:
    operator = make_people(mqtt_client.app).operator
    thing = mqtt_client.app.state.test_stations[KIM_LONG]
    stream = mqtt_client.get(f"{ST}/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    listener = Subscriber(mqtt_url, [f"v1.1/Things({thing})", f"v1.1/Things({thing})/+", "v1.1/Things",
                                     "v1.1/Locations", f"v1.1/Datastreams({stream})/Observations"])
    try:
        # a change: the entity's topic and the changed property's
        words = f"Kim Long gauge {uuid.uuid4().hex[:8]}"
        changed = mqtt_client.patch(f"{ST}/Things({thing})", headers=operator, json={"description": words})
        assert changed.status_code == 200, changed.text
        now = mqtt_client.get(f"{ST}/Things({thing})").json()
        listener.wait_for(f"v1.1/Things({thing})", now)
        listener.wait_for(f"v1.1/Things({thing})/description", {"description": words})
        # a new Thing with its inline Location: both sets, and the Thing's Locations
        made = mqtt_client.post(f"{ST}/Things", headers=operator, json={
            "name": "MQTT test station", "description": words,
            "properties": {"code": f"mqtt-{uuid.uuid4().hex[:8]}", "kind": "river_gauge", "unit_id": "vy-da"},
            "Locations": [{"name": "Đập Đá", "description": "", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [107.5969, 16.4707]}}]})
        assert made.status_code == 201, made.text
        [location] = mqtt_client.get(f"{ST}/Things({made.json()['@iot.id']})/Locations").json()["value"]
        listener.wait_for("v1.1/Things", made.json())
        listener.wait_for("v1.1/Locations", location)
        # Observations through CreateObservations and through a $batch, by the station's own sensor key
        sensor = {"X-Sensor-Key": demo_key(KIM_LONG)}
        first = second = _unique_time()
        while second == first:
            second = _unique_time()
        bulk = mqtt_client.post(f"{ST}/CreateObservations", headers=sensor, json=[{
            "Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"], "dataArray": [[first, 0.6]]}])
        assert bulk.status_code == 201 and bulk.json()[0] != "error", bulk.text
        batch = mqtt_client.post(f"{ST}/$batch", headers=sensor, json={"requests": [{
            "id": "1", "method": "post", "url": f"Datastreams({stream})/Observations",
            "body": {"phenomenonTime": second, "result": 0.6}}]})
        assert batch.status_code == 200 and batch.json()["responses"][0]["status"] == 201, batch.text
        for link in (bulk.json()[0], batch.json()["responses"][0]["body"]["@iot.selfLink"]):
            listener.wait_for(f"v1.1/Datastreams({stream})/Observations", mqtt_client.get(link).json())
    finally:
        listener.close()


def test_a_broker_that_is_down_never_fails_a_reading_and_dropped_changes_are_counted(
        monkeypatch, database_url, tmp_path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SUPERAPP_FLOODMAP_MQTT_URL", f"mqtt://127.0.0.1:{port}")
    monkeypatch.setenv("SUPERAPP_FLOODMAP_MQTT_QUEUE_SIZE", "10")
    app = _app(database_url, tmp_path)
    dropped_before = sta_mqtt.OUTCOMES.labels("dropped")._value.get()
    try:
        with TestClient(app) as client:
            # off the whole minutes, where the demo's seeded readings are
            start = datetime.now(UTC).replace(second=7, microsecond=0) - timedelta(minutes=30)
            for minute in range(12):
                answer = push(client, KIM_LONG, {"time": (start + timedelta(minutes=minute)).isoformat(), "value": 0.6})
                assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
            publisher = sta_mqtt.publisher_of(app.state.host)
            assert publisher is not None and not publisher.connected
            # the 12 changes waited for the broker in a queue of 10: the two oldest were dropped, counted
            assert (publisher.queued(), publisher.dropped, publisher.published) == (10, 2, 0)
            assert f'superapp_floodmap_mqtt_total{{outcome="dropped"}} {dropped_before + 2}' in \
                client.get("/metrics").text
    finally:
        sta_mqtt.stop(app.state.host)


def test_the_service_root_declares_mqtt_honestly_configured_or_not(monkeypatch, sqlite_url, tmp_path) -> None:
    """Not configured: no MQTT entry. Configured: where to subscribe (no credentials), but the receive-updates
    class stays out of ``conformance``: ``$select`` topics cannot be served with an outside broker."""
    with TestClient(_app(sqlite_url, tmp_path)) as client:
        settings = client.get(ST).json()["serverSettings"]
    assert settings == {"conformance": sensorthings.CONFORMANCE}
    monkeypatch.setenv("SUPERAPP_FLOODMAP_MQTT_URL", "mqtt://publisher:s3cret@127.0.0.1:1")
    app = _app(sqlite_url, tmp_path)
    try:
        with TestClient(app) as client:
            settings = client.get(ST).json()["serverSettings"]
    finally:
        sta_mqtt.stop(app.state.host)
    assert settings["conformance"] == sensorthings.CONFORMANCE
    assert sta_mqtt.RECEIVE_UPDATES not in settings["conformance"]
    assert settings[sta_mqtt.RECEIVE_UPDATES] == {"endpoints": ["mqtt://127.0.0.1:1"]}


@pytest.mark.parametrize("value", ["http://127.0.0.1:1883", "mqtt://", "mqtt://broker:99999",
                                   "mqtt://user:hunter2@broker:1883/topic"])
def test_a_bad_broker_url_stops_start_up_in_one_line_naming_it(monkeypatch, sqlite_url, tmp_path, value) -> None:
    monkeypatch.setenv("SUPERAPP_FLOODMAP_MQTT_URL", value)
    with pytest.raises(ContractError) as refused:
        create_app(base_settings(database_url=sqlite_url, var_dir=tmp_path / "var"))
    message = str(refused.value)
    assert "SUPERAPP_FLOODMAP_MQTT_URL" in message and "\n" not in message
    assert "hunter2" not in message  # a password in the URL is never echoed
