"""Camera stations' images: a camera pushes a snapshot with its sensor key; the host keeps the latest one
per station (EXIF-free JPEG, in the media store) and serves it to the station page and the map.

Only the latest image is kept: a camera sending one a minute would otherwise add half a million images a
year per camera. The image's address carries its time, so a browser caches each image for as long as it
likes and a new image is a new address.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from miniapps.floodmap.models import FloodThing, StationKind
from plugins import DomainError, MediaStore

MINIAPP = "floodmap"
# A snapshot's size limit is the host's body limit (SUPERAPP_MAX_BODY_BYTES, 1 MiB by default): a camera is
# a device with a key, not a signed-in person, so it gets no upload allowance.


def image_key(thing_id: int) -> str:
    """The media-store key of a camera station's latest image."""
    return f"{MINIAPP}/cameras/{thing_id}/latest.jpg"


def image_url(thing_id: int, taken: datetime) -> str:
    """The host-served address of a station's latest image; its time makes each image's address its own."""
    return f"/api/miniapps/{MINIAPP}/stations/{thing_id}/camera.jpg?at={int(taken.timestamp())}"


def store_image(engine: Engine, store: MediaStore, *, sensor_code: str, jpeg: bytes,
                now: datetime | None = None) -> FloodThing:
    """Keep ``jpeg`` as the latest image of the camera station that ``sensor_code`` belongs to; returns it."""
    now = now or datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as db:
        thing = db.exec(select(FloodThing).where(FloodThing.code == sensor_code)).first()
        if thing is None or thing.kind != StationKind.camera:
            raise DomainError(409, f"sensor {sensor_code!r} is not a camera's: send its readings to "
                                   f"/ingest/{sensor_code} instead", field="path.sensor_code")
        assert thing.id is not None
        store.put(image_key(thing.id), jpeg, "image/jpeg")  # before the row, so the row never names a missing file
        thing.camera_url = image_url(thing.id, now)
        thing.camera_image_at = now
        db.add(thing)
        db.commit()
        return thing


def latest_image(engine: Engine, store: MediaStore, thing_id: int) -> tuple[bytes, datetime]:
    """A camera station's latest image and its time; 404 when the station has none kept here."""
    with Session(engine) as db:
        thing = db.get(FloodThing, thing_id)
        if thing is None or thing.camera_image_at is None or not (thing.camera_url or "").startswith("/"):
            raise DomainError(404, f"station {thing_id} has no camera image here", field="path.station_id")
        taken = thing.camera_image_at
    try:
        return store.get(image_key(thing_id)), taken
    except KeyError:
        raise DomainError(404, f"station {thing_id}'s camera image is missing", field="path.station_id") from None
