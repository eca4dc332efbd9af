"""SensorThings 1.1 Create-Update-Delete (class A.2) for every entity set, FeaturesOfInterest and
HistoricalLocations included: create (201, Location header, deep insert, links), update (PATCH, PUT),
delete with the standard's cascades, the server-made FeatureOfInterest, a Thing's Locations replaced with
a HistoricalLocation, refusals as RFC 9457 problems naming the field, and who may write."""

from __future__ import annotations

from sqlmodel import Session, select

from miniapps.floodmap.models import FloodLocation, FloodObservation
from tests.miniapps.floodmap.conftest import KIM_LONG, make_people
from tests.miniapps.floodmap.test_sensorthings_write import _basic, _minutes_ago, _station

ST = "/api/miniapps/floodmap/v1.1"
GEOJSON = "application/geo+json"


def _point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def _created(answer) -> dict:
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == answer.json()["@iot.selfLink"]
    return answer.json()


def _problem(answer, status: int, field: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == field, answer.json()


def test_features_of_interest_are_created_updated_and_deleted(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    feature = _created(fm_client.post(f"{ST}/FeaturesOfInterest", headers=operator, json={
        "name": "Bến Tòa Khâm", "description": "bank", "encodingType": GEOJSON, "feature": _point(107.59, 16.46)}))
    url = feature["@iot.selfLink"]
    assert fm_client.get(url).json()["feature"] == _point(107.59, 16.46)
    assert fm_client.patch(url, headers=operator, json={"feature": _point(107.6, 16.47)}).status_code == 200
    assert fm_client.get(url).json()["feature"] == _point(107.6, 16.47)
    replaced = fm_client.put(url, headers=operator, json={"name": "Tòa Khâm", "encodingType": GEOJSON,
                                                          "feature": _point(107.61, 16.48)})
    assert replaced.status_code == 200, replaced.text
    assert fm_client.get(url).json()["description"] == ""  # PUT: left out is back to its default
    _problem(fm_client.patch(url, headers=operator, json={"feature": {"type": "Point"}}), 400, "body.feature")
    _problem(fm_client.post(f"{ST}/FeaturesOfInterest", headers=operator, json={
        "name": "x", "encodingType": "text/plain", "feature": _point(1, 1)}), 400, "body.encodingType")
    _problem(fm_client.post(f"{ST}/FeaturesOfInterest", headers=operator, json={
        "name": "x", "encodingType": GEOJSON, "feature": _point(1, 1), "colour": 1}), 400, "body.colour")
    assert fm_client.delete(url, headers=operator).status_code == 200
    assert fm_client.get(url).status_code == 404


def test_an_observation_names_its_feature_or_gets_its_stations(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    sensor = _basic("dap-da-test", made["key"])
    # none given: the server makes one from the station's Location, and reuses it for the next reading
    first = _created(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(40), "result": 0.5, "Datastream": {"@iot.id": made["stream"]}}))
    second = _created(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(35), "result": 0.5, "Datastream": {"@iot.id": made["stream"]}}))
    place = fm_client.get(f"{ST}/Things({made['thing']})/Locations").json()["value"][0]
    made_feature = fm_client.get(f"{first['@iot.selfLink']}/FeatureOfInterest").json()
    assert made_feature["feature"] == place["location"] and made_feature["name"] == place["name"]
    assert fm_client.get(f"{second['@iot.selfLink']}/FeatureOfInterest").json()["@iot.id"] == made_feature["@iot.id"]
    # an existing one by id, and a new one inline (deep insert)
    by_id = _created(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(30), "result": 0.5, "Datastream": {"@iot.id": made["stream"]},
        "FeatureOfInterest": {"@iot.id": made_feature["@iot.id"]}}))
    inline = _created(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(25), "result": 0.5, "Datastream": {"@iot.id": made["stream"]},
        "FeatureOfInterest": {"name": "Mép nước", "encodingType": GEOJSON, "feature": _point(107.597, 16.471)}}))
    new_feature = fm_client.get(f"{inline['@iot.selfLink']}/FeatureOfInterest").json()
    assert new_feature["name"] == "Mép nước" and new_feature["@iot.id"] != made_feature["@iot.id"]
    assert fm_client.get(f"{by_id['@iot.selfLink']}/FeatureOfInterest").json()["@iot.id"] == made_feature["@iot.id"]
    listed = fm_client.get(f"{ST}/FeaturesOfInterest({made_feature['@iot.id']})/Observations").json()["value"]
    assert {o["@iot.id"] for o in listed} == {first["@iot.id"], second["@iot.id"], by_id["@iot.id"]}
    # a PATCH of the reading may move it to another feature, and keeps it otherwise
    moved = fm_client.patch(by_id["@iot.selfLink"], headers=operator,
                            json={"FeatureOfInterest": {"@iot.id": new_feature["@iot.id"]}})
    assert moved.status_code == 200, moved.text
    assert fm_client.get(f"{by_id['@iot.selfLink']}/FeatureOfInterest").json()["@iot.id"] == new_feature["@iot.id"]
    assert fm_client.patch(second["@iot.selfLink"], headers=operator, json={"result": 0.52}).status_code == 200
    assert fm_client.get(f"{second['@iot.selfLink']}/FeatureOfInterest").json()["@iot.id"] == made_feature["@iot.id"]
    # refused: an unknown feature, a refused reading leaves no inline feature behind
    _problem(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(20), "result": 0.5, "Datastream": {"@iot.id": made["stream"]},
        "FeatureOfInterest": {"@iot.id": 10**6}}), 400, "body.FeatureOfInterest")
    features = len(fm_client.get(f"{ST}/FeaturesOfInterest", params={"$top": 1000}).json()["value"])
    _problem(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(20), "result": 40, "Datastream": {"@iot.id": made["stream"]},
        "FeatureOfInterest": {"name": "x", "encodingType": GEOJSON, "feature": _point(1, 1)}}), 400, "body.result")
    assert len(fm_client.get(f"{ST}/FeaturesOfInterest", params={"$top": 1000}).json()["value"]) == features
    # a feature readings depend on is not deleted with them: 409 until they are gone
    _problem(fm_client.delete(f"{ST}/FeaturesOfInterest({new_feature['@iot.id']})", headers=operator), 409, "path")
    for url in (inline["@iot.selfLink"], by_id["@iot.selfLink"]):
        assert fm_client.delete(url, headers=operator).status_code == 200
    assert fm_client.delete(f"{ST}/FeaturesOfInterest({new_feature['@iot.id']})", headers=operator).status_code == 200


def test_a_thing_without_a_location_needs_a_feature_for_its_readings(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    place = fm_client.get(f"{ST}/Things({made['thing']})/Locations").json()["value"][0]["@iot.selfLink"]
    assert fm_client.delete(place, headers=operator).status_code == 200
    sensor = _basic("dap-da-test", made["key"])
    _problem(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(10), "result": 0.5, "Datastream": {"@iot.id": made["stream"]}}),
        400, "body.FeatureOfInterest")


def test_linking_a_thing_to_a_location_replaces_its_location_and_records_the_move(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    thing = f"{ST}/Things({made['thing']})"
    [first] = fm_client.get(f"{thing}/Locations").json()["value"]
    [placed] = fm_client.get(f"{thing}/HistoricalLocations").json()["value"]
    assert fm_client.get(f"{placed['@iot.selfLink']}/Locations").json()["value"][0]["@iot.id"] == first["@iot.id"]
    # POST Things(id)/Locations: the new place replaces the old, and a HistoricalLocation records it
    second = _created(fm_client.post(f"{thing}/Locations", headers=operator, json={
        "name": "Đập Đá (mới)", "encodingType": GEOJSON, "location": _point(107.598, 16.472)}))
    assert [p["@iot.id"] for p in fm_client.get(f"{thing}/Locations").json()["value"]] == [second["@iot.id"]]
    history = fm_client.get(f"{thing}/HistoricalLocations", params={"$orderby": "time asc"}).json()["value"]
    assert len(history) == 2
    assert fm_client.get(f"{history[-1]['@iot.selfLink']}/Locations").json()["value"][0]["@iot.id"] == second["@iot.id"]
    assert fm_client.get(f"{first['@iot.selfLink']}/Things").json()["value"] == []  # a former place
    assert len(fm_client.get(f"{first['@iot.selfLink']}/HistoricalLocations").json()["value"]) == 1
    # readings from now on get the new place's feature
    sensor = _basic("dap-da-test", made["key"])
    reading = _created(fm_client.post(f"{ST}/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(5), "result": 0.5, "Datastream": {"@iot.id": made["stream"]}}))
    assert fm_client.get(f"{reading['@iot.selfLink']}/FeatureOfInterest").json()["feature"] == second["location"]
    # PATCH a Thing's Locations with an existing one: back to the first place
    back = fm_client.patch(thing, headers=operator, json={"Locations": [{"@iot.id": first["@iot.id"]}]})
    assert back.status_code == 200, back.text
    assert [p["@iot.id"] for p in fm_client.get(f"{thing}/Locations").json()["value"]] == [first["@iot.id"]]
    assert len(fm_client.get(f"{thing}/HistoricalLocations").json()["value"]) == 3
    # a station stands at one place
    _problem(fm_client.patch(thing, headers=operator, json={"Locations": [{"@iot.id": first["@iot.id"]},
                                                                           {"@iot.id": second["@iot.id"]}]}),
             400, "body.Locations")
    # a Location created alone belongs to no station until linked; PATCH its Things to link it
    alone = _created(fm_client.post(f"{ST}/Locations", headers=operator, json={
        "name": "Cồn Hến", "encodingType": GEOJSON, "location": _point(107.59, 16.475)}))
    assert fm_client.get(f"{alone['@iot.selfLink']}/Things").json()["value"] == []
    linked = fm_client.patch(alone["@iot.selfLink"], headers=operator, json={"Things": [{"@iot.id": made["thing"]}]})
    assert linked.status_code == 200, linked.text
    assert [p["@iot.id"] for p in fm_client.get(f"{thing}/Locations").json()["value"]] == [alone["@iot.id"]]


def test_historical_locations_are_created_updated_and_deleted(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    thing = f"{ST}/Things({made['thing']})"
    [first] = fm_client.get(f"{thing}/Locations").json()["value"]
    other = _created(fm_client.post(f"{ST}/Locations", headers=operator, json={
        "name": "Trạm tạm", "encodingType": GEOJSON, "location": _point(107.5, 16.4)}))
    # an older placing is history only: the station stays where it stands
    old = _created(fm_client.post(f"{ST}/HistoricalLocations", headers=operator, json={
        "time": "2020-01-01T00:00:00Z", "Thing": {"@iot.id": made["thing"]}, "Locations": [{"@iot.id": other["@iot.id"]}]}))
    assert old["time"] == "2020-01-01T00:00:00Z"
    assert [p["@iot.id"] for p in fm_client.get(f"{thing}/Locations").json()["value"]] == [first["@iot.id"]]
    # the newest placing moves it (created under the Thing: Things(id)/HistoricalLocations)
    newest = _created(fm_client.post(f"{thing}/HistoricalLocations", headers=operator, json={
        "time": _minutes_ago(-1), "Locations": [{"@iot.id": other["@iot.id"]}]}))  # after its placing just now
    assert fm_client.get(f"{newest['@iot.selfLink']}/Thing").json()["@iot.id"] == made["thing"]
    assert [p["@iot.id"] for p in fm_client.get(f"{thing}/Locations").json()["value"]] == [other["@iot.id"]]
    assert fm_client.patch(old["@iot.selfLink"], headers=operator, json={"time": "2021-06-01T07:00:00+07:00"}).status_code == 200
    assert fm_client.get(old["@iot.selfLink"]).json()["time"] == "2021-06-01T00:00:00Z"
    put = fm_client.put(old["@iot.selfLink"], headers=operator, json={
        "time": "2021-07-01T00:00:00Z", "Thing": {"@iot.id": made["thing"]}, "Locations": [{"@iot.id": first["@iot.id"]}]})
    assert put.status_code == 200, put.text
    assert fm_client.get(f"{old['@iot.selfLink']}/Locations").json()["value"][0]["@iot.id"] == first["@iot.id"]
    _problem(fm_client.patch(old["@iot.selfLink"], headers=operator, json={"time": "yesterday"}), 400, "body.time")
    _problem(fm_client.post(f"{ST}/HistoricalLocations", headers=operator, json={
        "time": "2020-01-01T00:00:00Z", "Thing": {"@iot.id": made["thing"]}, "Locations": []}), 400, "body.Locations")
    _problem(fm_client.post(f"{ST}/HistoricalLocations", headers=operator, json={
        "time": "2020-01-01T00:00:00Z", "Thing": {"@iot.id": 10**6}, "Locations": [{"@iot.id": first["@iot.id"]}]}),
        400, "body.Thing")
    assert fm_client.delete(old["@iot.selfLink"], headers=operator).status_code == 200
    assert fm_client.get(old["@iot.selfLink"]).status_code == 404
    # deleting a Location deletes its HistoricalLocations
    assert fm_client.delete(other["@iot.selfLink"], headers=operator).status_code == 200
    assert fm_client.get(newest["@iot.selfLink"]).status_code == 404


def test_every_set_is_created_updated_and_deleted_with_the_standards_cascades(fm_app, fm_client) -> None:
    operator = make_people(fm_app).operator
    made = _station(fm_client, operator)
    sensor = _basic("dap-da-test", made["key"])
    reading = _created(fm_client.post(f"{ST}/Datastreams({made['stream']})/Observations", headers=sensor, json={
        "phenomenonTime": _minutes_ago(15), "result": 0.4}))
    prop = _created(fm_client.post(f"{ST}/ObservedProperties", headers=operator, json={
        "name": "Turbidity", "definition": "http://vocab.nerc.ac.uk/collection/P01/current/TURBXXXX/"}))
    for url, change in ((f"{ST}/Things({made['thing']})", {"description": "patched"}),
                        (f"{ST}/Sensors({made['sensor']})", {"metadata": "patched"}),
                        (prop["@iot.selfLink"], {"description": "patched"}),
                        (f"{ST}/Datastreams({made['stream']})", {"unitOfMeasurement": {
                            "name": "metre", "symbol": "m", "definition": "patched"}})):
        assert fm_client.patch(url, headers=operator, json=change).status_code == 200, url
        key, value = next(iter(change.items()))
        assert fm_client.get(url).json()[key] == value, url
    # a Sensor or ObservedProperty still in use: 409 (its readings are not deleted as a side effect)
    _problem(fm_client.delete(f"{ST}/Sensors({made['sensor']})", headers=operator), 409, "path")
    assert fm_client.delete(prop["@iot.selfLink"], headers=operator).status_code == 200
    # a Thing takes its Datastreams, their Observations and its HistoricalLocations; its Locations stay
    [place] = fm_client.get(f"{ST}/Things({made['thing']})/Locations").json()["value"]
    [history] = fm_client.get(f"{ST}/Things({made['thing']})/HistoricalLocations").json()["value"]
    assert fm_client.delete(f"{ST}/Things({made['thing']})", headers=operator).status_code == 200
    for gone in (f"{ST}/Things({made['thing']})", f"{ST}/Datastreams({made['stream']})", reading["@iot.selfLink"],
                 history["@iot.selfLink"]):
        assert fm_client.get(gone).status_code == 404, gone
    assert fm_client.get(place["@iot.selfLink"]).status_code == 200
    with Session(fm_app.state.engine) as db:
        assert db.get(FloodLocation, place["@iot.id"]).thing_id is None
    assert fm_client.delete(f"{ST}/Sensors({made['sensor']})", headers=operator).status_code == 200
    assert fm_client.delete(place["@iot.selfLink"], headers=operator).status_code == 200


def test_who_may_write_each_new_set(fm_app, fm_client) -> None:
    people = make_people(fm_app)
    feature = {"name": "x", "encodingType": GEOJSON, "feature": _point(107.5, 16.4)}
    for path, body in (("FeaturesOfInterest", feature), ("HistoricalLocations", {"time": "2020-01-01T00:00:00Z"})):
        anonymous = fm_client.post(f"{ST}/{path}", json=body)
        assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith("application/problem+json")
        resident = fm_client.post(f"{ST}/{path}", headers=people.kim_long, json=body)
        assert resident.status_code == 403 and resident.json()["permission"] == "floodmap.sensorthings.write"
    for method in ("patch", "delete"):
        for path in ("FeaturesOfInterest(1)", "HistoricalLocations(1)"):
            assert getattr(fm_client, method)(f"{ST}/{path}").status_code == 401
            kwargs = {"json": {}} if method == "patch" else {}
            assert getattr(fm_client, method)(f"{ST}/{path}", headers=people.kim_long, **kwargs).status_code == 403
    # a keyed sensor creates Observations only
    sensor = {"X-Sensor-Key": "demo-" + KIM_LONG}
    assert fm_client.post(f"{ST}/FeaturesOfInterest", headers=sensor, json=feature).status_code == 403


def test_existing_readings_keep_the_feature_and_history_the_derived_views_gave(fm_app, fm_client) -> None:
    thing = fm_app.state.test_stations[KIM_LONG]
    [place] = fm_client.get(f"{ST}/Things({thing})/Locations").json()["value"]
    [history] = fm_client.get(f"{ST}/Things({thing})/HistoricalLocations").json()["value"]
    assert history["time"].endswith("Z")
    with Session(fm_app.state.engine) as db:
        features = set(db.exec(select(FloodObservation.feature_id)).all())
    assert None not in features  # every demo reading names its feature
    readings = fm_client.get(f"{ST}/Things({thing})/Datastreams").json()["value"][0]["@iot.selfLink"]
    page = fm_client.get(f"{readings}/Observations", params={"$expand": "FeatureOfInterest", "$top": 5}).json()["value"]
    assert len(page) == 5 and all(o["FeatureOfInterest"]["feature"] == place["location"] for o in page)
