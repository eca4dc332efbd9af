"""The SensorThings 1.1 checklist of issue 17, one check per item, each against the served app.

``run(client, ids)`` answers (check, passed, detail) for every check; the test asserts all pass, and
``python -m tests.miniapps.floodmap.sta_checklist`` prints the tally on a fresh SQLite database (the
figure in docs/floodmap.md). Checks are grouped by the OGC conformance class they belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

ST = "/api/miniapps/floodmap/v1.1"
ENTITY_SETS = ("Things", "Locations", "HistoricalLocations", "Sensors", "ObservedProperties", "Datastreams",
               "Observations", "FeaturesOfInterest", "MultiDatastreams")
Check = Callable[[Any, dict[str, int]], bool]
CHECKS: list[tuple[str, str, Check]] = []


def check(conformance: str, name: str) -> Callable[[Check], Check]:
    """Register a check of ``conformance`` named ``name``."""
    def add(fn: Check) -> Check:
        CHECKS.append((conformance, name, fn))
        return fn
    return add


def _get(client: Any, path: str, **params: Any) -> Any:
    return client.get(f"{ST}/{path}" if path else ST, params=params)


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, (answer.request.url, answer.status_code, answer.text[:300])
    return answer.json()


def _values(client: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    return _ok(_get(client, path, **params))["value"]


# --- Core: service root and entity sets ------------------------------------------------------------------

@check("core", "service root lists all eight entity sets and MultiDatastreams")
def _root_sets(c, ids):
    return {e["name"] for e in _ok(_get(c, ""))["value"]} >= set(ENTITY_SETS)


@check("core", "service root declares conformance in serverSettings")
def _root_conformance(c, ids):
    return "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel" in _ok(_get(c, ""))["serverSettings"]["conformance"]


for _set in ENTITY_SETS:
    def _lists(c, ids, name=_set):
        return isinstance(_values(c, name, **{"$top": 2}), list)
    check("core", f"{_set} collection answers")(_lists)


@check("core", "Things carry HistoricalLocations navigation link")
def _thing_links(c, ids):
    thing = _ok(_get(c, f"Things({ids['thing']})"))
    return all(f"{n}@iot.navigationLink" in thing for n in ("Locations", "HistoricalLocations", "Datastreams"))


@check("core", "Observations carry FeatureOfInterest navigation link")
def _obs_foi_link(c, ids):
    return "FeatureOfInterest@iot.navigationLink" in _values(c, "Observations", **{"$top": 1})[0]


@check("core", "Locations link to HistoricalLocations")
def _loc_hl(c, ids):
    return "HistoricalLocations@iot.navigationLink" in _values(c, "Locations", **{"$top": 1})[0]


@check("core", "Observation's FeatureOfInterest resolves, and expands for a page")
def _foi(c, ids):
    page = _values(c, f"Datastreams({ids['stream']})/Observations", **{"$expand": "FeatureOfInterest", "$top": 3})
    return "feature" in _ok(_get(c, f"Observations({ids['observation']})/FeatureOfInterest")) and \
        len({o["FeatureOfInterest"]["@iot.id"] for o in page}) == 1


@check("core", "HistoricalLocation has a time and its Thing")
def _hl(c, ids):
    hl = _values(c, f"Things({ids['thing']})/HistoricalLocations")[0]
    return hl["time"].endswith("Z") and _ok(c.get(hl["Thing@iot.navigationLink"]))["@iot.id"] == ids["thing"]


@check("core", "property path Things(id)/name")
def _prop(c, ids):
    return set(_ok(_get(c, f"Things({ids['thing']})/name"))) == {"name"}


@check("core", "property value Things(id)/name/$value is plain text")
def _value(c, ids):
    answer = _get(c, f"Things({ids['thing']})/name/$value")
    return answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain") and answer.text


@check("core", "nested navigation Datastreams(id)/Thing/Locations")
def _nested(c, ids):
    return len(_values(c, f"Datastreams({ids['stream']})/Thing/Locations")) >= 1


@check("core", "Things(id)/Datastreams(id)")
def _nav_entity(c, ids):
    return _ok(_get(c, f"Things({ids['thing']})/Datastreams({ids['stream']})"))["@iot.id"] == ids["stream"]


@check("core", "Things(id)/Datastreams(other id) is 404")
def _nav_entity_404(c, ids):
    return _get(c, f"Things({ids['thing']})/Datastreams(999999)").status_code == 404


@check("core", "$ref of a collection")
def _ref(c, ids):
    refs = _values(c, f"Things({ids['thing']})/Datastreams/$ref")
    return refs and set(refs[0]) == {"@iot.selfLink"}


@check("core", "$ref of one entity")
def _ref_one(c, ids):
    return set(_ok(_get(c, f"Datastreams({ids['stream']})/Thing/$ref"))) == {"@iot.selfLink"}


@check("core", "unknown path is 404")
def _unknown_path(c, ids):
    return _get(c, f"Things({ids['thing']})/Nonsense").status_code == 404


# --- Core: query options ---------------------------------------------------------------------------------

@check("core", "$select returns only the selected properties")
def _select(c, ids):
    return all(set(t) == {"@iot.id", "name"} for t in _values(c, "Things", **{"$select": "id,name"}))


@check("core", "$select of a navigation property gives its link")
def _select_nav(c, ids):
    return all(set(t) == {"Datastreams@iot.navigationLink"} for t in _values(c, "Things", **{"$select": "Datastreams"}))


@check("core", "$expand with nested $select and $filter")
def _expand_nested(c, ids):
    things = _values(c, "Things", **{"$expand": "Datastreams($select=name;$filter=name ne 'zzz')", "$top": 3})
    return all(all(set(d) == {"name"} for d in t["Datastreams"]) for t in things)


@check("core", "$expand with nested $expand inside options")
def _expand_inner(c, ids):
    things = _values(c, "Things", **{"$expand": "Datastreams($expand=Observations($top=1;$orderby=phenomenonTime desc))"})
    return any(t["Datastreams"] and len(t["Datastreams"][0]["Observations"]) == 1 for t in things)


@check("core", "$expand of a to-one with @iot.count on the to-many")
def _expand_count(c, ids):
    streams = _values(c, "Datastreams", **{"$expand": "Thing,Observations($top=2;$count=true)"})
    return all("Thing" in d and d["Observations@iot.count"] >= len(d["Observations"]) for d in streams)


@check("core", "$expand depth beyond the limit is 400 naming $expand")
def _expand_depth(c, ids):
    answer = _get(c, "Things", **{"$expand": "Datastreams/Thing/Datastreams/Thing/Datastreams"})
    return answer.status_code == 400 and answer.json()["field"] == "query.$expand"


@check("core", "$top beyond the limit is 400")
def _top_limit(c, ids):
    return _get(c, "Observations", **{"$top": "100000"}).status_code == 400


@check("core", "$orderby with upper-case DESC")
def _orderby_desc(c, ids):
    times = [o["phenomenonTime"] for o in _values(c, f"Datastreams({ids['stream']})/Observations",
                                                  **{"$orderby": "phenomenonTime DESC", "$top": 5})]
    return len(times) == 5 and times == sorted(times, reverse=True)


@check("core", "$orderby on a nested property")
def _orderby_nested(c, ids):
    kinds = [t["properties"]["kind"] for t in _values(c, "Things", **{"$orderby": "properties/kind desc,id"})]
    return kinds == sorted(kinds, reverse=True) and len(set(kinds)) > 1


@check("core", "$orderby on a function of a property")
def _orderby_function(c, ids):
    names = [t["name"] for t in _values(c, "Things", **{"$orderby": "length(name) asc,id"})]
    return [len(n) for n in names] == sorted(len(n) for n in names)


@check("core", "$count=true gives @iot.count")
def _count(c, ids):
    return _ok(_get(c, "Things", **{"$count": "true"}))["@iot.count"] >= 1


@check("core", "@iot.nextLink pages with $orderby on a nested property")
def _next_nested(c, ids):
    first = _ok(_get(c, "Things", **{"$orderby": "properties/kind", "$top": 2}))
    second = _ok(c.get(first["@iot.nextLink"]))
    return not {t["@iot.id"] for t in first["value"]} & {t["@iot.id"] for t in second["value"]}


# --- Filtering ------------------------------------------------------------------------------------------

def _filter_count(c: Any, path: str, expression: str) -> int:
    return len(_values(c, path, **{"$filter": expression, "$top": 1000}))


def _filters(path: str, expression: str, test: Callable[[int, dict[str, int]], bool], name: str) -> None:
    check("filtering", name)(lambda c, ids: test(_filter_count(c, path, expression.format(**ids)), ids))


_filters("Observations", "result gt 0 or result le 0", lambda n, ids: n > 100, "or")
_filters("Observations", "not (result gt -1000)", lambda n, ids: n == 0, "not with parentheses")
_filters("Observations", "(result add 1) mul 2 gt 0 and result sub 1 lt 1000 and result div 2 ge -500 "
                         "and result mod 7 lt 7", lambda n, ids: n > 100, "arithmetic add sub mul div mod")
_filters("Things", "substringof('Kim Long', name)", lambda n, ids: n == 2, "substringof")
_filters("Things", "startswith(properties/code, 'kim') and endswith(properties/code, 'gauge')", lambda n, ids: n == 1,
         "startswith, endswith, nested property")
_filters("Things", "contains(tolower(properties/code), 'kim-') and length(name) gt 3 and indexof(properties/code, 'long') "
                   "eq 4 and substring(properties/code, 0, 3) eq 'kim' and trim(concat(' ', name)) eq name "
                   "and toupper(properties/code) ne properties/code and substring(properties/code, 9) eq 'gauge'",
         lambda n, ids: n == 1, "string functions")
_filters("Observations", f"year(phenomenonTime) eq {datetime.now(UTC).year} or year(phenomenonTime) eq "
                         f"{(datetime.now(UTC) - timedelta(days=3)).year}", lambda n, ids: n > 100, "year")
_filters("Observations", "month(phenomenonTime) ge 1 and day(phenomenonTime) le 31 and hour(phenomenonTime) lt 24 "
                         "and minute(phenomenonTime) lt 60 and second(phenomenonTime) lt 60", lambda n, ids: n > 100,
         "date parts")
_filters("Observations", "phenomenonTime lt now() and phenomenonTime gt mindatetime()", lambda n, ids: n > 100,
         "now, mindatetime")
_filters("Observations", "round(result) ge floor(result) and ceiling(result) ge result", lambda n, ids: n > 100,
         "round, floor, ceiling")
_filters("Observations", "Datastream/id eq {stream}", lambda n, ids: n > 10, "navigation path Datastream/id")
_filters("Observations", "Datastream/Thing/id eq {thing}", lambda n, ids: n > 10, "two-hop navigation path")
_filters("Things", "Datastreams/unitOfMeasurement/symbol eq 'cm'", lambda n, ids: n == 4,
         "to-many navigation path with nested property")
_filters("Things", "properties/kind eq 'camera'", lambda n, ids: n >= 1, "nested property properties/kind")
_filters("Locations", "geo.distance(location, geography'POINT(107.55 16.46)') lt 1", lambda n, ids: n >= 1,
         "geo.distance")
_filters("Locations", "st_within(location, geography'POLYGON((107 16, 108 16, 108 17, 107 17, 107 16))')",
         lambda n, ids: n >= 1, "st_within")
_filters("Locations", "geo.intersects(location, geography'POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))')",
         lambda n, ids: n == 0, "geo.intersects")
_filters("Things", "st_within(Locations/location, geography'POLYGON((107 16, 108 16, 108 17, 107 17, 107 16))')",
         lambda n, ids: n >= 1, "geospatial through a navigation path")
_filters("Things", "name in ('Kim Long gauge', 'nothing')", lambda n, ids: n <= 1, "in")
_filters("Observations", "FeatureOfInterest/id eq {thing} and Datastream/id eq {stream}", lambda n, ids: n > 10,
         "a path through FeatureOfInterest")
_filters("ObservedProperties", "MultiDatastreams/id eq {multi}", lambda n, ids: n == 2,
         "a path through MultiDatastreams' components")


@check("filtering", "bad $filter is 400 naming $filter")
def _bad_filter(c, ids):
    answers = [_get(c, "Observations", **{"$filter": f}) for f in ("result gt", "colour eq 1", "result eq 'x'",
                                                                   "nosuch(result) eq 1", "phenomenonTime gt 2026-01-01T00:00:00")]
    return all(a.status_code == 400 and a.json()["field"] == "query.$filter" for a in answers)


# --- DataArray ------------------------------------------------------------------------------------------

@check("dataarray", "$resultFormat=dataArray")
def _data_array(c, ids):
    body = _ok(_get(c, f"Datastreams({ids['stream']})/Observations", **{"$resultFormat": "dataArray", "$top": 3}))
    [group] = body["value"]
    return group["components"][0] == "id" and len(group["dataArray"]) == 3 and \
        group["Datastream@iot.navigationLink"].endswith(f"Datastreams({ids['stream']})")


@check("dataarray", "$resultFormat=dataArray with $select")
def _data_array_select(c, ids):
    body = _ok(_get(c, "Observations", **{"$resultFormat": "dataArray", "$select": "result,phenomenonTime"}))
    return all(g["components"] == ["result", "phenomenonTime"] and len(g["dataArray"][0]) == 2 for g in body["value"])


# --- MultiDatastream ------------------------------------------------------------------------------------

@check("multi-datastream", "MultiDatastreams with units, data types and ObservedProperties in order")
def _multi(c, ids):
    multi = _ok(_get(c, f"MultiDatastreams({ids['multi']})", **{"$expand": "ObservedProperties,Thing"}))
    return multi["observationType"].endswith("OM_ComplexObservation") and \
        [u["symbol"] for u in multi["unitOfMeasurements"]] == ["m", "°C"] and \
        len(multi["multiObservationDataTypes"]) == 2 and len(multi["ObservedProperties"]) == 2 and \
        multi["Thing"]["@iot.id"] == ids["thing"]


@check("multi-datastream", "a MultiDatastream's Observations have a result per component")
def _multi_observations(c, ids):
    observations = _values(c, f"MultiDatastreams({ids['multi']})/Observations", **{"$top": 3})
    first = observations[0]
    back = _ok(c.get(first["MultiDatastream@iot.navigationLink"]))
    feature = _ok(c.get(first["FeatureOfInterest@iot.navigationLink"]))
    return len(observations) == 3 and all(len(o["result"]) == 2 for o in observations) and \
        back["@iot.id"] == ids["multi"] and feature["feature"]["type"] == "Point"


@check("multi-datastream", "Things, Sensors and ObservedProperties link to MultiDatastreams")
def _multi_links(c, ids):
    return len(_values(c, f"Things({ids['thing']})/MultiDatastreams")) == 1 and \
        any(_values(c, f"ObservedProperties({p['@iot.id']})/MultiDatastreams")
            for p in _values(c, "ObservedProperties"))


# --- Create-Update-Delete (served, not declared: see docs/floodmap.md for what is missing) and Batch -----

def _basic(code: str, key: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{code}:{key}".encode()).decode()}


def _recent(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@check("create-update-delete", "an operator creates a Thing with its Location (201, Location header)")
def _create_thing(c, ids):
    answer = c.post(f"{ST}/Things", headers=ids["operator"], json={
        "name": "Checklist station", "description": "", "properties": {
            "code": "checklist-station", "kind": "street_hotspot", "unit_id": "phu-xuan"},
        "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [107.59, 16.47]}}]})
    ids["created_thing"] = answer.json().get("@iot.id")
    return answer.status_code == 201 and answer.headers["location"].endswith(f"Things({ids['created_thing']})")


@check("create-update-delete", "a keyed sensor creates an Observation with HTTP Basic")
def _sensor_creates(c, ids):
    answer = c.post(f"{ST}/Datastreams({ids['stream']})/Observations", headers=_basic(*ids["sensor"]),
                    json={"phenomenonTime": _recent(1.5), "result": 0.66})
    return answer.status_code == 201 and _ok(c.get(answer.headers["location"]))["result"] == 0.66


@check("create-update-delete", "the ingest rules refuse an impossible Observation, naming the field")
def _ingest_rules(c, ids):
    answer = c.post(f"{ST}/Datastreams({ids['stream']})/Observations", headers=_basic(*ids["sensor"]),
                    json={"phenomenonTime": _recent(1), "result": 99})
    return answer.status_code == 400 and answer.json()["field"] == "body.result"


@check("create-update-delete", "an operator patches a Thing with JSON Patch")
def _patch_thing(c, ids):
    answer = c.patch(f"{ST}/Things({ids['created_thing']})", headers={
        **ids["operator"], "Content-Type": "application/json-patch+json"},
        content=b'[{"op": "replace", "path": "/description", "value": "patched"}]')
    return answer.status_code == 200 and _ok(_get(c, f"Things({ids['created_thing']})"))["description"] == "patched"


@check("create-update-delete", "an operator deletes the Thing")
def _delete_thing(c, ids):
    return c.delete(f"{ST}/Things({ids['created_thing']})", headers=ids["operator"]).status_code == 200 and \
        _get(c, f"Things({ids['created_thing']})").status_code == 404


@check("create-update-delete", "a writer without credentials is 401")
def _anonymous_write(c, ids):
    return c.post(f"{ST}/Things", json={}).status_code == 401


@check("batch", "a JSON batch of reads and a write, answered in order")
def _batch(c, ids):
    answer = _ok(c.post(f"{ST}/$batch", headers=ids["operator"], json={"requests": [
        {"id": "a", "method": "get", "url": f"Things({ids['thing']})?$select=id"},
        {"id": "b", "method": "post", "url": "ObservedProperties", "body": {"name": "checklist", "definition": "x"}},
        {"id": "c", "method": "delete", "url": "$b"}]}))
    return [r["status"] for r in answer["responses"]] == [200, 201, 200]


@check("batch", "an atomicity group is all or nothing: one refusal rolls back its earlier writes")
def _batch_group(c, ids):
    answer = _ok(c.post(f"{ST}/$batch", headers=ids["operator"], json={"requests": [
        {"id": "a", "method": "post", "url": "ObservedProperties", "atomicityGroup": "g",
         "body": {"name": "checklist group", "definition": "x"}},
        {"id": "b", "method": "post", "url": "ObservedProperties", "atomicityGroup": "g", "body": {"name": "no definition"}}]}))
    gone = _values(c, "ObservedProperties", **{"$filter": "name eq 'checklist group'"}) == []
    return [r["status"] for r in answer["responses"]] == [424, 400] and gone


@check("batch", "a multipart/mixed batch with a change set answers each part, the change set nested")
def _batch_multipart(c, ids):
    def part(request: str, content_id: str) -> str:
        return (f"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {content_id}"
                f"\r\n\r\n{request}\r\n")
    body = "\r\n".join([
        "--b", part(f"GET {ST}/Things({ids['thing']})?$select=id HTTP/1.1\r\n", "0"),
        "--b", "Content-Type: multipart/mixed; boundary=cs\r\n",
        "--cs", part('POST ObservedProperties HTTP/1.1\r\nContent-Type: application/json\r\n\r\n'
                     '{"name": "checklist multipart", "definition": "x"}', "1"),
        "--cs", part("DELETE $1 HTTP/1.1\r\n", "2"), "--cs--", "--b--", ""])
    answer = c.post(f"{ST}/$batch", headers={**ids["operator"], "Content-Type": "multipart/mixed; boundary=b"},
                    content=body.encode())
    text = answer.text
    return answer.status_code == 200 and answer.headers["content-type"].startswith("multipart/mixed") and \
        [line for line in text.split("\r\n") if line.startswith("HTTP/1.1")] == [
            "HTTP/1.1 200 OK", "HTTP/1.1 201 Created", "HTTP/1.1 200 OK"]


def run(client: Any, ids: dict[str, int]) -> list[tuple[str, str, bool, str]]:
    """Every check: (class, name, passed, why not)."""
    results = []
    for conformance, name, fn in CHECKS:
        try:
            passed, detail = bool(fn(client, ids)), ""
        except Exception as exc:  # a failed check reports what it saw, the run goes on
            passed, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        results.append((conformance, name, passed, detail))
    return results


def ids_of(engine: Any, operator: dict[str, str] | None = None) -> dict[str, Any]:
    """Kim Long's thing, its datastream, one of its observations and its MultiDatastream; the operator's
    headers and Kim Long's sensor credentials for the writes."""
    from sqlmodel import Session, select

    from miniapps.floodmap import models
    from miniapps.floodmap.demo import demo_key
    from miniapps.floodmap.models import FloodDatastream, FloodObservation, FloodThing

    multi_model = getattr(models, "FloodMultiDatastream", None)  # absent before MultiDatastreams (the "before" tally)
    with Session(engine) as db:
        thing = db.exec(select(FloodThing.id).where(FloodThing.code == "kim-long-gauge")).one()
        stream = db.exec(select(FloodDatastream.id).where(FloodDatastream.thing_id == thing)).first()
        observation = db.exec(select(FloodObservation.id).where(FloodObservation.datastream_id == stream)).first()
        multi = db.exec(select(multi_model.id).where(multi_model.thing_id == thing)).first() if multi_model else None
    return {"thing": thing, "stream": stream, "observation": observation, "multi": multi,
            "operator": operator or {}, "sensor": ("kim-long-gauge", demo_key("kim-long-gauge"))}


if __name__ == "__main__":  # pragma: no cover - the tally for the docs
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from core.app import create_app
    from tests.conftest import _migrate_and_load, base_settings
    from tests.miniapps.floodmap.conftest import load_stations, make_people

    with tempfile.TemporaryDirectory() as tmp:
        _migrate_and_load(f"sqlite:///{tmp}/sta.db")
        app = create_app(base_settings(database_url=f"sqlite:///{tmp}/sta.db", var_dir=Path(tmp) / "var"))
        with TestClient(app) as client:
            load_stations(app)
            outcome = run(client, ids_of(app.state.engine, make_people(app).operator))
    for conformance, name, passed, detail in outcome:
        print(f"{'PASS' if passed else 'FAIL'} [{conformance}] {name} {detail}")
    print(f"{sum(p for *_, p, _ in outcome)} of {len(outcome)} checks pass")
