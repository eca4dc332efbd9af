"""SensorThings Create-Update-Delete: operators write every set, a keyed sensor creates Observations of its
own streams, and every reading goes through the ingest rules (range, time, duplicates, jumps)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from miniapps.floodmap.demo import demo_key
from miniapps.floodmap.models import FloodObservation, FloodThing
from tests.miniapps.floodmap.conftest import KIM_LONG, make_people

ST = "/api/miniapps/floodmap/v1.1"
GEOJSON = "application/geo+json"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def _basic(code: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{code}:{key}".encode()).decode()}


def _minutes_ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _station(client, operator) -> dict[str, object]:
    """An operator registers a station through SensorThings: Thing with its Location, Sensor, Datastream."""
    thing = client.post(f"{ST}/Things", headers=operator, json={
        "name": "Trạm thử Đập Đá", "description": "test station",
        "properties": {"code": "dap-da-test", "kind": "river_gauge", "unit_id": "vy-da"},
        "Locations": [{"name": "Đập Đá", "description": "", "encodingType": GEOJSON,
                       "location": {"type": "Point", "coordinates": [107.5969, 16.4707]}}]})
    assert thing.status_code == 201, thing.text
    assert thing.headers["location"] == thing.json()["@iot.selfLink"]
    sensor = client.post(f"{ST}/Sensors", headers=operator, json={
        "name": "Đập Đá radar", "description": "", "encodingType": "text/plain", "metadata": "radar level",
        "properties": {"code": "dap-da-test"}})
    assert sensor.status_code == 201, sensor.text
    key = sensor.headers["x-sensor-key"]
    assert "key" not in str(sensor.json()).lower()
    prop = client.get(f"{ST}/ObservedProperties", params={"$filter": "name eq 'Water level'"}).json()["value"][0]
    stream = client.post(f"{ST}/Things({thing.json()['@iot.id']})/Datastreams", headers=operator, json={
        "name": "Water level at Đập Đá", "description": "", "observationType": MEASUREMENT,
        "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": ""},
        "Sensor": {"@iot.id": sensor.json()["@iot.id"]}, "ObservedProperty": {"@iot.id": prop["@iot.id"]},
        "properties": {"valid_min": -2, "valid_max": 12, "max_change_per_hour": 3, "alarm_levels": [1, 2, 3.5]}})
    assert stream.status_code == 201, stream.text
    return {"thing": thing.json()["@iot.id"], "sensor": sensor.json()["@iot.id"], "key": key,
            "stream": stream.json()["@iot.id"]}


def test_an_operator_registers_a_station_and_its_sensor_reports_through_the_ingest_rules(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    sensor = _basic("dap-da-test", made["key"])
    assert fm_client.get(f"{ST}/Things({made['thing']})/Locations").json()["value"][0]["location"]["coordinates"] == \
        [107.5969, 16.4707]
    posted = fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(10), "result": 0.8, "Datastream": {"@iot.id": made["stream"]}})
    assert posted.status_code == 201, posted.text
    observation = fm_client.get(posted.headers["location"]).json()
    assert observation["result"] == 0.8
    # the same ingest rules as /ingest: duplicates, range, sentinels, the clock, jumps
    for body, status, field in (
            ({"phenomenonTime": observation["phenomenonTime"], "result": 0.8}, 409, "body.phenomenonTime"),
            ({"phenomenonTime": _minutes_ago(5), "result": 40}, 400, "body.result"),
            ({"phenomenonTime": _minutes_ago(5), "result": -999}, 400, "body.result"),
            ({"phenomenonTime": _minutes_ago(-60), "result": 0.8}, 400, "body.phenomenonTime"),
            ({"phenomenonTime": _minutes_ago(5), "result": 9.0}, 400, "body.result"),
            ({"phenomenonTime": "yesterday", "result": 0.8}, 400, "body.phenomenonTime")):
        answer = fm_client.post(f"{ST}/Datastreams({made['stream']})/Observations", headers=sensor, json=body)
        assert (answer.status_code, answer.json().get("field")) == (status, field), (body, answer.text)
    kim_long_stream = fm_client.get(f"{ST}/Things({fm_app.state.test_stations[KIM_LONG]})/Datastreams").json()["value"][0]
    other = fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(3), "result": 0.7, "Datastream": {"@iot.id": kim_long_stream["@iot.id"]}})
    assert other.status_code == 403
    wrong_key = fm_client.post(f"{ST}/Observations", headers=_basic("dap-da-test", "fm_nope"), json={})
    assert wrong_key.status_code == 401 and "Basic" in wrong_key.headers["www-authenticate"]
    by_header = fm_client.post(f"{ST}/Observations", headers={"X-Sensor-Key": demo_key(KIM_LONG)}, json={
        "phenomenonTime": _minutes_ago(1), "result": 0.71, "Datastream": {"@iot.id": kim_long_stream["@iot.id"]}})
    assert by_header.status_code == 201, by_header.text
    # a sensor only creates Observations
    assert fm_client.post(f"{ST}/Things", headers=sensor, json={}).status_code == 403
    assert fm_client.delete(posted.headers["location"], headers=sensor).status_code == 403
    with Session(fm_app.state.engine) as db:
        thing = db.get(FloodThing, made["thing"])
    assert thing.last_value == 0.8  # the alert step ran, as at ingest


def test_patch_judges_the_new_reading_and_keeps_the_observation_id(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    sensor = _basic("dap-da-test", made["key"])
    url = fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(20), "result": 1.0, "Datastream": {"@iot.id": made["stream"]}}
    ).headers["location"]
    merged = fm_client.patch(url, headers=operator, json={"result": 1.1})
    assert merged.status_code == 200, merged.text
    assert fm_client.get(url).json()["result"] == 1.1
    patch = fm_client.patch(url, headers={**operator, "Content-Type": "application/json-patch+json"},
                            content=b'[{"op": "replace", "path": "/result", "value": 1.2}]')
    assert patch.status_code == 200, patch.text
    assert fm_client.get(url).json()["result"] == 1.2
    refused = fm_client.patch(url, headers=operator, json={"result": 99})
    assert refused.status_code == 400 and refused.json()["field"] == "body.result"
    assert fm_client.get(url).json()["result"] == 1.2  # the old reading stays
    with Session(fm_app.state.engine) as db:
        assert len(db.exec(select(FloodObservation.id).where(FloodObservation.datastream_id == made["stream"])).all()) == 1
    renamed = fm_client.patch(f"{ST}/Things({made['thing']})", headers=operator,
                              json={"name": "Trạm Đập Đá", "properties": {"warn_units": ["vy-da", "thuan-hoa"]}})
    assert renamed.status_code == 200, renamed.text
    thing = fm_client.get(f"{ST}/Things({made['thing']})").json()
    assert thing["name"] == "Trạm Đập Đá" and thing["properties"]["warn_units"] == ["vy-da", "thuan-hoa"]
    assert thing["properties"]["code"] == "dap-da-test"
    replaced = fm_client.put(f"{ST}/Things({made['thing']})", headers=operator, json={
        "name": "Trạm Đập Đá", "properties": {"code": "dap-da-test", "kind": "river_gauge", "unit_id": "vy-da"}})
    assert replaced.status_code == 200, replaced.text
    thing = fm_client.get(f"{ST}/Things({made['thing']})").json()
    assert thing["description"] == "" and thing["properties"]["warn_units"] == ["vy-da"]  # back to the defaults
    incomplete = fm_client.put(f"{ST}/Things({made['thing']})", headers=operator, json={"name": "x"})
    assert incomplete.status_code == 400 and incomplete.json()["field"] == "body.properties.code"
    bad = fm_client.patch(f"{ST}/Things({made['thing']})", headers=operator, json={"properties": {"kind": "boat"}})
    assert bad.status_code == 400 and bad.json()["field"] == "body.properties.kind"
    place = fm_client.get(f"{ST}/Things({made['thing']})/Locations").json()["value"][0]["@iot.selfLink"]
    moved = fm_client.patch(place, headers=operator, json={"location": {"type": "Point", "coordinates": [107.6, 16.47]}})
    assert moved.status_code == 200


def test_delete_and_who_may_write(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    made = _station(fm_client, people.operator)
    url = fm_client.post(f"{ST}/Observations", headers=_basic("dap-da-test", made["key"]), json={
        "phenomenonTime": _minutes_ago(30), "result": 0.5, "Datastream": {"@iot.id": made["stream"]}}
    ).headers["location"]
    assert fm_client.delete(url, headers=people.kim_long).status_code == 403
    assert fm_client.delete(url).status_code == 401
    assert fm_client.post(f"{ST}/Things", headers=people.kim_long, json={}).status_code == 403
    assert fm_client.delete(url, headers=people.operator).status_code == 200
    assert fm_client.get(url).status_code == 404
    in_use = fm_client.delete(f"{ST}/Sensors({made['sensor']})", headers=people.operator)
    assert in_use.status_code == 409
    assert fm_client.delete(f"{ST}/Things({made['thing']})", headers=people.operator).status_code == 200
    assert fm_client.get(f"{ST}/Datastreams({made['stream']})").status_code == 404
    assert fm_client.delete(f"{ST}/Sensors({made['sensor']})", headers=people.operator).status_code == 200
    in_use = fm_client.delete(f"{ST}/FeaturesOfInterest(1)", headers=people.operator)  # Kim Long's readings' feature
    assert in_use.status_code == 409 and in_use.json()["field"] == "path"
    again = fm_client.post(f"{ST}/Sensors", headers=people.operator, json={
        "name": "x", "encodingType": "text/plain", "metadata": "", "properties": {"code": KIM_LONG}})
    assert again.status_code == 409 and again.json()["field"] == "body.properties.code"
    unknown = fm_client.post(f"{ST}/ObservedProperties", headers=people.operator, json={"name": "x", "colour": 1})
    assert unknown.status_code == 400 and unknown.json()["field"] == "body.colour"


def test_a_multi_datastream_reading_is_checked_per_component(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    thing = fm_app.state.test_stations[KIM_LONG]
    multi = fm_client.get(f"{ST}/Things({thing})/MultiDatastreams").json()["value"][0]
    sensor = {"X-Sensor-Key": demo_key(KIM_LONG)}
    url = f"{ST}/MultiDatastreams({multi['@iot.id']})/Observations"
    ok = fm_client.post(url, headers=sensor, json={"phenomenonTime": _minutes_ago(7), "result": [0.7, 24.1]})
    assert ok.status_code == 201, ok.text
    assert fm_client.get(ok.headers["location"]).json()["result"] == [0.7, 24.1]
    hot = fm_client.post(url, headers=sensor, json={"phenomenonTime": _minutes_ago(6), "result": [0.7, 80]})
    assert hot.status_code == 400 and "result" in hot.json()["field"], hot.text
    short = fm_client.post(url, headers=sensor, json={"phenomenonTime": _minutes_ago(6), "result": [0.7]})
    assert short.status_code == 400
    made = fm_client.post(f"{ST}/MultiDatastreams", headers=operator, json={
        "name": "pair", "description": "", "Thing": {"@iot.id": thing},
        "Sensor": {"@iot.id": fm_client.get(f"{ST}/MultiDatastreams({multi['@iot.id']})/Sensor").json()["@iot.id"]},
        "ObservedProperties": [{"@iot.id": p["@iot.id"]} for p in fm_client.get(f"{ST}/ObservedProperties").json()["value"][:2]],
        "unitOfMeasurements": [{"name": "metre", "symbol": "m"}, {"name": "centimetre", "symbol": "cm"}],
        "multiObservationDataTypes": [MEASUREMENT, MEASUREMENT],
        "properties": {"components": [{"valid_min": -2, "valid_max": 12, "max_change_per_hour": 3},
                                      {"valid_min": 0, "valid_max": 300, "max_change_per_hour": 100}]}})
    assert made.status_code == 201, made.text
    assert [u["symbol"] for u in made.json()["unitOfMeasurements"]] == ["m", "cm"]


def test_a_json_batch_reads_creates_and_refers_to_what_it_created(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    batch = fm_client.post(f"{ST}/$batch", headers=operator, json={"requests": [
        {"id": "thing", "method": "get", "url": f"Things({made['thing']})?$select=name"},
        {"id": "p", "method": "post", "url": "ObservedProperties",
         "body": {"name": "Flow speed", "definition": "https://example.org/flow"}},
        {"id": "read", "method": "get", "url": "$p"},
        {"id": "obs", "method": "post", "url": f"Datastreams({made['stream']})/Observations",
         "body": {"phenomenonTime": _minutes_ago(4), "result": 0.9}},
        {"id": "bad", "method": "post", "url": f"Datastreams({made['stream']})/Observations",
         "body": {"phenomenonTime": _minutes_ago(3), "result": 50}},
        {"id": "gone", "method": "delete", "url": "$p"},
    ]})
    assert batch.status_code == 200, batch.text
    answers = {a["id"]: a for a in batch.json()["responses"]}
    assert answers["thing"]["body"] == {"name": "Trạm thử Đập Đá"}
    assert answers["p"]["status"] == 201 and answers["read"]["body"]["name"] == "Flow speed"
    assert answers["obs"]["status"] == 201 and answers["obs"]["body"]["result"] == 0.9
    assert answers["bad"]["status"] == 400 and answers["bad"]["body"]["field"] == "body.result"
    assert answers["gone"]["status"] == 200
    assert fm_client.get(answers["p"]["headers"]["location"]).status_code == 404
    anonymous = fm_client.post(f"{ST}/$batch", json={"requests": [
        {"id": "1", "method": "get", "url": "Things?$top=1"},
        {"id": "2", "method": "post", "url": "ObservedProperties", "body": {"name": "x", "definition": "y"}}]})
    assert [a["status"] for a in anonymous.json()["responses"]] == [200, 401]
    assert fm_client.post(f"{ST}/$batch", json={"requests": []}).status_code == 400


def _property_named(client, name: str) -> list[dict]:
    return client.get(f"{ST}/ObservedProperties", params={"$filter": f"name eq '{name}'"}).json()["value"]


def _readings_of(client, stream: int) -> list[float]:
    return [o["result"] for o in client.get(f"{ST}/Datastreams({stream})/Observations").json()["value"]]


def test_an_atomicity_group_commits_all_of_its_writes_or_none(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    observations = f"Datastreams({made['stream']})/Observations"
    refused = fm_client.post(f"{ST}/$batch", headers=operator, json={"requests": [
        {"id": "p", "method": "post", "url": "ObservedProperties", "atomicityGroup": "g1",
         "body": {"name": "Rolled back", "definition": "https://example.org/rb"}},
        {"id": "o", "method": "post", "url": observations, "atomicityGroup": "g1",
         "body": {"phenomenonTime": _minutes_ago(6), "result": 1.1}},
        {"id": "bad", "method": "post", "url": observations, "atomicityGroup": "g1",
         "body": {"phenomenonTime": _minutes_ago(5), "result": 50}},
        {"id": "after", "method": "get", "url": "ObservedProperties?$filter=name eq 'Rolled back'"},
    ]})
    assert refused.status_code == 200, refused.text
    answers = refused.json()["responses"]
    assert [(a["id"], a["status"], a.get("atomicityGroup")) for a in answers] == [
        ("p", 424, "g1"), ("o", 424, "g1"), ("bad", 400, "g1"), ("after", 200, None)]
    assert answers[2]["body"]["field"] == "body.result"  # the ingest rules' reason, as POST gives it
    assert answers[3]["body"]["value"] == []  # the group's first write was rolled back with the others
    assert _property_named(fm_client, "Rolled back") == [] and 1.1 not in _readings_of(fm_client, made["stream"])

    kept = fm_client.post(f"{ST}/$batch", headers=operator, json={"requests": [
        {"id": "p", "method": "post", "url": "ObservedProperties", "atomicityGroup": "g2",
         "body": {"name": "Kept", "definition": "https://example.org/kept"}},
        {"id": "fix", "method": "patch", "url": "$p", "atomicityGroup": "g2", "body": {"description": "patched"}},
        {"id": "o", "method": "post", "url": observations, "atomicityGroup": "g2",
         "body": {"phenomenonTime": _minutes_ago(6), "result": 1.2}},
        {"id": "seen", "method": "get", "url": "$p", "atomicityGroup": "g2"},
    ]})
    assert [a["status"] for a in kept.json()["responses"]] == [201, 200, 201, 200], kept.text
    assert kept.json()["responses"][3]["body"]["description"] == "patched"  # reads see the group's writes
    assert _property_named(fm_client, "Kept")[0]["description"] == "patched"
    assert 1.2 in _readings_of(fm_client, made["stream"])

    apart = fm_client.post(f"{ST}/$batch", headers=operator, json={"requests": [
        {"id": "1", "method": "get", "url": "Things", "atomicityGroup": "a"},
        {"id": "2", "method": "get", "url": "Things"},
        {"id": "3", "method": "get", "url": "Things", "atomicityGroup": "a"}]})
    assert apart.status_code == 400 and apart.json()["field"] == "body.requests.atomicityGroup"
    sensor = fm_client.post(f"{ST}/$batch", headers=_basic("dap-da-test", made["key"]), json={"requests": [
        {"id": "o", "method": "post", "url": observations, "atomicityGroup": "s",
         "body": {"phenomenonTime": _minutes_ago(2), "result": 1.3}},
        {"id": "p", "method": "post", "url": "ObservedProperties", "atomicityGroup": "s",
         "body": {"name": "Not a sensor's", "definition": "x"}}]})
    assert [a["status"] for a in sensor.json()["responses"]] == [424, 403]
    assert 1.3 not in _readings_of(fm_client, made["stream"])


def _part(request: str, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    return head + (f"Content-ID: {content_id}\r\n" if content_id else "") + "\r\n" + request + "\r\n"


def _post(url: str, body: dict) -> str:
    return f"POST {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json.dumps(body, ensure_ascii=False)}"


def test_a_multipart_batch_with_change_sets(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    observations = f"{ST}/Datastreams({made['stream']})/Observations"
    body = "\r\n".join([
        "--batch_1", _part(f"GET {ST}/Things({made['thing']})?$select=name HTTP/1.1\r\n"),
        "--batch_1", "Content-Type: multipart/mixed; boundary=changeset_a\r\n",
        "--changeset_a", _part(_post(f"{ST}/ObservedProperties", {"name": "Độ đục", "definition": "x"}), "1"),
        "--changeset_a", _part("PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
                                 '{"description": "nước đục"}', "2"),
        "--changeset_a", _part(_post(observations, {"phenomenonTime": _minutes_ago(7), "result": 1.4}), "3"),
        "--changeset_a--",
        "--batch_1", "Content-Type: multipart/mixed; boundary=changeset_b\r\n",
        "--changeset_b", _part(_post(f"{ST}/ObservedProperties", {"name": "Never", "definition": "x"}), "4"),
        "--changeset_b", _part(_post(observations, {"phenomenonTime": _minutes_ago(3), "result": 50}), "5"),
        "--changeset_b--",
        "--batch_1--", ""])
    answer = fm_client.post(f"{ST}/$batch", headers={**operator, "Content-Type": "multipart/mixed; boundary=batch_1"},
                            content=body.encode())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("multipart/mixed; boundary=")
    message = email.message_from_bytes(f"Content-Type: {answer.headers['content-type']}\r\n\r\n".encode()
                                       + answer.content, policy=email.policy.compat32)
    parts = message.get_payload()
    assert len(parts) == 3
    read = parts[0].get_payload(decode=True).decode()
    assert read.startswith("HTTP/1.1 200 OK") and '"name": "Trạm thử Đập Đá"' in read
    changes = [p.get_payload(decode=True).decode() for p in parts[1].get_payload()]
    assert [c.split("\r\n")[0] for c in changes] == ["HTTP/1.1 201 Created", "HTTP/1.1 200 OK", "HTTP/1.1 201 Created"]
    assert [p["Content-ID"] for p in parts[1].get_payload()] == ["1", "2", "3"]
    failed = parts[2].get_payload(decode=True).decode()  # a failed change set answers its one refusal
    assert parts[2].get_content_type() == "application/http" and failed.startswith("HTTP/1.1 400 Bad Request")
    assert '"field": "body.result"' in failed
    assert _property_named(fm_client, "Độ đục")[0]["description"] == "nước đục"
    assert _property_named(fm_client, "Never") == []
    assert 1.4 in _readings_of(fm_client, made["stream"])
    broken = fm_client.post(f"{ST}/$batch", headers={**operator, "Content-Type": "multipart/mixed"}, content=b"x")
    assert broken.status_code == 400 and broken.json()["field"] == "header.content-type"


def test_a_thing_is_created_deep_with_its_location_and_datastream(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    answer = fm_client.post(f"{ST}/Things", headers=operator, json={
        "name": "Trạm mưa Phong Điền", "description": "", "properties": {
            "code": "phong-dien-rain", "kind": "rain_gauge", "unit_id": "phong-dien"},
        "Locations": [{"name": "Phong Điền", "description": "", "encodingType": GEOJSON,
                       "location": {"type": "Point", "coordinates": [107.35, 16.55]}}],
        "Datastreams": [{
            "name": "Rainfall at Phong Điền", "description": "", "observationType": MEASUREMENT,
            "unitOfMeasurement": {"name": "millimetre per hour", "symbol": "mm/h", "definition": ""},
            "Sensor": {"name": "Phong Điền tipping bucket", "description": "", "encodingType": "text/plain",
                       "metadata": "", "properties": {"code": "phong-dien-rain"}},
            "ObservedProperty": {"name": "Rain accumulation", "definition": "https://example.org/rain"},
            "properties": {"valid_min": 0, "valid_max": 300, "max_change_per_hour": 150}}]})
    assert answer.status_code == 201, answer.text
    thing = answer.json()["@iot.id"]
    key = answer.headers["x-sensor-key"]
    [stream] = fm_client.get(f"{ST}/Things({thing})/Datastreams", params={"$expand": "Sensor,ObservedProperty"}).json()["value"]
    assert stream["Sensor"]["name"] == "Phong Điền tipping bucket" and stream["ObservedProperty"]["name"] == "Rain accumulation"
    posted = fm_client.post(f"{ST}/Datastreams({stream['@iot.id']})/Observations", headers=_basic("phong-dien-rain", key),
                            json={"phenomenonTime": _minutes_ago(2), "result": 12.5})
    assert posted.status_code == 201, posted.text
    # a refused part refuses the whole deep insert: nothing of it is stored
    broken = fm_client.post(f"{ST}/Things", headers=operator, json={
        "name": "half", "properties": {"code": "half-station", "kind": "rain_gauge", "unit_id": "phong-dien"},
        "Datastreams": [{"name": "x", "observationType": MEASUREMENT, "unitOfMeasurement": {"name": "m", "symbol": "m"},
                         "Sensor": {"@iot.id": 999999}, "ObservedProperty": {"@iot.id": 1},
                         "properties": {"valid_min": 0, "valid_max": 1, "max_change_per_hour": 1}}]})
    assert broken.status_code == 400 and broken.json()["field"] == "body.Sensor"
    assert fm_client.get(f"{ST}/Things", params={"$filter": "properties/code eq 'half-station'"}).json()["value"] == []


def test_create_observations_in_the_data_array_format(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    sensor = _basic("dap-da-test", made["key"])
    answer = fm_client.post(f"{ST}/CreateObservations", headers=sensor, json=[{
        "Datastream": {"@iot.id": made["stream"]}, "components": ["phenomenonTime", "result"],
        "dataArray": [[_minutes_ago(30), 0.5], [_minutes_ago(20), 0.55], [_minutes_ago(10), 40], [_minutes_ago(20), 0.6],
                      ["not a time", 0.5], [_minutes_ago(5)]]}])
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert [link == "error" for link in links] == [False, False, True, True, True, True]
    assert fm_client.get(links[1]).json()["result"] == 0.55
    other = fm_client.get(f"{ST}/Things({fm_app.state.test_stations[KIM_LONG]})/Datastreams").json()["value"][0]
    refused = fm_client.post(f"{ST}/CreateObservations", headers=sensor, json=[{
        "Datastream": {"@iot.id": other["@iot.id"]}, "components": ["phenomenonTime", "result"],
        "dataArray": [[_minutes_ago(3), 0.5]]}])
    assert refused.status_code == 403
    with_feature = fm_client.post(f"{ST}/CreateObservations", headers=sensor, json=[{
        "Datastream": {"@iot.id": made["stream"]}, "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],
        "dataArray": [[_minutes_ago(3), 0.5, 1], [_minutes_ago(2), 0.5, 10**6]]}])
    assert with_feature.status_code == 201, with_feature.text
    named, unknown = with_feature.json()
    assert fm_client.get(f"{named}/FeatureOfInterest").json()["@iot.id"] == 1 and unknown == "error"
