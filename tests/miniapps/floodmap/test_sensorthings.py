"""The SensorThings-style read API: entity sets, links, paging, $filter, $orderby and $expand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.miniapps.floodmap.conftest import KIM_LONG, push, readings

ST = "/api/miniapps/floodmap/v1.1"


def test_the_service_root_lists_the_standard_entity_sets(fm_client) -> None:
    root = fm_client.get(ST).json()
    assert [e["name"] for e in root["value"]] == ["Things", "Locations", "HistoricalLocations", "Sensors",
                                                  "ObservedProperties", "Datastreams", "Observations",
                                                  "FeaturesOfInterest", "MultiDatastreams"]
    assert all(e["url"].endswith(f"/v1.1/{e['name']}") for e in root["value"])


def test_entities_carry_ids_self_and_navigation_links(fm_app, fm_client) -> None:
    thing_id = fm_app.state.test_stations[KIM_LONG]
    thing = fm_client.get(f"{ST}/Things({thing_id})").json()
    assert thing["@iot.id"] == thing_id
    assert thing["@iot.selfLink"].endswith(f"/v1.1/Things({thing_id})")
    assert thing["Datastreams@iot.navigationLink"].endswith(f"/v1.1/Things({thing_id})/Datastreams")
    assert thing["properties"]["code"] == KIM_LONG
    streams = fm_client.get(thing["Datastreams@iot.navigationLink"]).json()["value"]
    assert streams[0]["unitOfMeasurement"]["symbol"] == "m"
    assert streams[0]["properties"]["alarm_levels"] == [1.0, 2.0, 3.5]
    location = fm_client.get(f"{ST}/Things({thing_id})/Locations").json()["value"][0]
    assert location["encodingType"] == "application/geo+json" and location["location"]["type"] == "Point"
    sensor = fm_client.get(f"{ST}/Datastreams({streams[0]['@iot.id']})/Sensor").json()
    assert "key" not in str(sensor).lower().replace("keys", "")
    assert fm_client.get(f"{ST}/Things(999999)").status_code == 404


def test_paging_with_top_skip_count_and_next_link(fm_client) -> None:
    first = fm_client.get(f"{ST}/Things", params={"$top": 3, "$count": "true"}).json()
    assert len(first["value"]) == 3 and first["@iot.count"] == 9
    second = fm_client.get(first["@iot.nextLink"]).json()
    assert {t["@iot.id"] for t in second["value"]}.isdisjoint({t["@iot.id"] for t in first["value"]})
    last = fm_client.get(f"{ST}/Things", params={"$top": 3, "$skip": 6}).json()
    assert len(last["value"]) == 3 and "@iot.nextLink" not in last


def test_filter_on_time_and_result_with_order(fm_app, fm_client) -> None:
    stream = fm_client.get(f"{ST}/Things({fm_app.state.test_stations[KIM_LONG]})/Datastreams").json()["value"][0]
    push(fm_client, KIM_LONG, readings(0.8, 1.05, 1.2, every=timedelta(minutes=3)))
    since = (datetime.now(UTC) - timedelta(minutes=15)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    found = fm_client.get(f"{ST}/Datastreams({stream['@iot.id']})/Observations", params={
        "$filter": f"phenomenonTime ge {since} and result gt 1.0", "$orderby": "phenomenonTime desc"}).json()
    assert [o["result"] for o in found["value"]] == [1.2, 1.05]
    assert all(o["phenomenonTime"].endswith("Z") for o in found["value"])


def test_unknown_filter_syntax_is_400_naming_filter(fm_client) -> None:
    for bad in ("result gt 1 or", "substringof('a')", "result gt", "colour eq 'red'", "phenomenonTime gt yesterday",
                "result gt 'high'", "result like 1", "phenomenonTime gt 2026-01-01T00:00:00", "result add 1",
                "geo.distance(result, geography'POINT(1 2)') lt 1", "st_within(location, geography'POINT(1')",
                "Datastream eq 1", "Datastream/colour eq 1", "result eq null and result gt null",
                "((((((" * 10, "result eq " + "1 add " * 300 + "1"):
        answer = fm_client.get(f"{ST}/Observations", params={"$filter": bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["field"] == "query.$filter" and "$filter" in answer.json()["detail"]
    assert fm_client.get(f"{ST}/Things", params={"$top": "lots"}).json()["field"] == "query.$top"
    assert fm_client.get(f"{ST}/Things", params={"$orderby": "secret desc"}).status_code == 400


def test_expand_gives_each_station_its_latest_observation(fm_app, fm_client) -> None:
    push(fm_client, KIM_LONG, readings(0.75))
    body = fm_client.get(f"{ST}/Things", params={
        "$expand": "Datastreams/Observations($top=1;$orderby=phenomenonTime desc),Locations"}).json()
    kim_long = next(t for t in body["value"] if t["properties"]["code"] == KIM_LONG)
    [stream] = kim_long["Datastreams"]
    [latest] = stream["Observations"]
    assert latest["result"] == 0.75
    assert kim_long["Locations"][0]["name"]
    camera = next(t for t in body["value"] if t["properties"]["kind"] == "camera")
    assert camera["Datastreams"] == []
    assert fm_client.get(f"{ST}/Things", params={"$expand": "Nonsense"}).json()["field"] == "query.$expand"


def test_edge_filters_answer_200_or_400_never_500(fm_client) -> None:
    # overflow, division by zero, negative lengths, far dates: the database's own refusals become a 400
    # naming $filter (PostgreSQL), or the expression evaluates (SQLite turns an overflow into a float)
    for expression in ("id mul 9223372036854775807 gt 0", "result mul 1e308 mul 10 gt 0", "result div 0 eq 1",
                       "result mod 0 eq 1", "substring(name, 1, -3) eq 'a'", "substring(name, -5) eq 'a'",
                       "phenomenonTime ge 9999-12-31T23:59:59-14:00", "fractionalseconds(phenomenonTime) lt 1",
                       "ceiling(result div 3) eq 1", "geo.length(geography'LINESTRING(0 0, 1 1)') gt 1"):
        for path in ("Observations", "Things"):
            answer = fm_client.get(f"{ST}/{path}", params={"$filter": expression, "$top": 2})
            assert answer.status_code in (200, 400), (path, expression, answer.text)
            if answer.status_code == 400:
                assert answer.json()["field"] == "query.$filter"
