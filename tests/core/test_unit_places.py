"""The one point-to-unit lookup (core.units.places.unit_at): imported boundaries first, Hue's pre-2025
wards (vietnamadminunits) next, the 40 new centres last; and ``superapp units import-boundaries``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from core.db import make_engine
from core.units import places
from core.units.boundaries import BoundaryError, import_boundaries
from core.units.former import former_wards
from core.units.models import UnitBoundary
from tests.core.test_cli import run

# Points a resident of Kim Long knows; the new Kim Long's centre is 6 km south of them, so the nearest
# of the 40 new centres sent them to Phu Xuan, Thuan Hoa and Huong An.
KIM_LONG_STREET = [(16.4625, 107.5620), (16.4585, 107.5520)]
THIEN_MU = (16.4532, 107.5446)
IMPERIAL_CITY = (16.4698, 107.5786)
AN_CUU_MARKET = (16.4560, 107.5900)


@pytest.fixture
def db(database_url: str):
    engine = make_engine(database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def square(lat: float, lon: float, half: float) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_the_package_gives_hue_133_former_wards_mapped_into_the_40_units() -> None:
    wards = former_wards()
    assert len(wards) == 133
    assert len({w.new_key for w in wards}) == 40
    kim_long = next(w for w in wards if w.name == "Phường Kim Long")
    assert kim_long.new_key == "phuongkimlong" and kim_long.contains(*KIM_LONG_STREET[0])


def test_kim_long_street_and_thien_mu_go_to_kim_long(db: Session) -> None:
    for point in [*KIM_LONG_STREET, THIEN_MU]:
        placement = places.unit_at(db, *point)
        assert placement is not None and placement.unit.id == "kim-long", point
        assert placement.method == "former_ward"
        # the old rule, kept only as the last resort, got them wrong
        assert places.nearest_unit(db, *point).id != "kim-long"
    assert places.unit_at(db, *IMPERIAL_CITY).unit.id == "phu-xuan"
    assert places.unit_at(db, *AN_CUU_MARKET).unit.id == "thuan-hoa"


def test_every_new_unit_holds_its_own_centre(db: Session) -> None:
    units = places.local_units(db)
    assert len(units) == 40
    misplaced = {u.id: places.unit_at(db, u.lat, u.lon).unit.id for u in units}
    assert {k: v for k, v in misplaced.items() if k != v} == {}


def test_imported_boundaries_decide_first(db: Session) -> None:
    # A (deliberately wrong) boundary drawing Thien Mu into Huong An wins over the fallback.
    stored = import_boundaries(db, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Phường Hương An"}, "geometry": square(*THIEN_MU, 0.002)},
        {"type": "Feature", "properties": {"code": "19774"}, "geometry": square(16.46, 107.562, 0.003)},
    ]}, source="test.geojson")
    assert stored == ["huong-an", "kim-long"]
    placement = places.unit_at(db, *THIEN_MU)
    assert (placement.unit.id, placement.method) == ("huong-an", "boundary")
    assert places.unit_at(db, *KIM_LONG_STREET[0]).method == "boundary"
    # outside every imported polygon: the fallback still answers
    assert places.unit_at(db, *AN_CUU_MARKET).method == "former_ward"
    # importing again replaces, not duplicates
    import_boundaries(db, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"unit_id": "huong-an"}, "geometry": square(16.47, 107.51, 0.01)}]})
    assert len(db.exec(select(UnitBoundary)).all()) == 2
    assert places.unit_at(db, *THIEN_MU).unit.id == "kim-long"


@pytest.mark.parametrize(("feature", "message"), [
    ({"properties": {"name": "Ba Đình"}, "geometry": square(16.46, 107.56, 0.01)}, "names no commune or ward"),
    ({"properties": {"unit_id": "kim-long"}, "geometry": {"type": "Point", "coordinates": [107.5, 16.4]}},
     "not a Polygon"),
    ({"properties": {"unit_id": "kim-long"}, "geometry": {"type": "Polygon", "coordinates": [
        [[107.5, 16.4], [107.6, 16.5], [107.6, 16.4], [107.5, 16.5], [107.5, 16.4]]]}}, "invalid polygon"),
])
def test_a_bad_feature_imports_nothing_and_is_named(db: Session, feature: dict, message: str) -> None:
    good = {"type": "Feature", "properties": {"unit_id": "huong-an"}, "geometry": square(16.47, 107.51, 0.01)}
    with pytest.raises(BoundaryError, match=message) as refused:
        import_boundaries(db, {"type": "FeatureCollection", "features": [good, {"type": "Feature", **feature}]})
    assert "features[1]" in str(refused.value)
    assert db.exec(select(UnitBoundary)).all() == []


def test_cli_imports_a_geojson_file(tmp_path: Path) -> None:
    env = {"SUPERAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SUPERAPP_ENV": "dev"}
    assert run("db", "upgrade", env=env).returncode == 0
    layer = tmp_path / "hue.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ten": "Kim Long"}, "geometry": square(16.46, 107.56, 0.01)}]}))
    done = run("units", "import-boundaries", str(layer), env=env)
    assert done.returncode == 0, done.stderr
    assert "imported 1 boundaries: kim-long" in done.stdout
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ten": "Gotham"}, "geometry": square(16.46, 107.56, 0.01)}]}))
    refused = run("units", "import-boundaries", str(layer), env=env)
    assert refused.returncode == 2 and "nothing imported" in refused.stderr and "features[0]" in refused.stderr
    assert run("db", "check", env=env).returncode == 0
