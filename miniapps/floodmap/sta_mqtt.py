"""SensorThings 1.1 MQTT extension, "receive updates": after a commit that creates or changes entities, the
entity's JSON, as a GET of it answers, is published on the standard's topics at an outside MQTT broker
(``SUPERAPP_FLOODMAP_MQTT_URL``).

Topics (``v1.1/`` then a resource path): a new entity on its set (``v1.1/Observations``) and on every set
it is reached through (``v1.1/Datastreams(3)/Observations``, ``v1.1/MultiDatastreams(2)/Observations``,
``v1.1/FeaturesOfInterest(5)/Observations``, ``v1.1/Things(1)/Datastreams``, ...); a changed entity on
its own topic (``v1.1/Things(1)``) and each property the change set on the property's topic
(``v1.1/Things(1)/properties``, as ``GET Things(1)/properties`` answers it). ``$select`` topics are not
served: with an outside broker the server never sees who subscribed to what.

Never in the way of the request: the request thread only appends a small note of what changed (ids, or
a reading's datastream and time) to a bounded queue of this process and returns. One worker thread
takes the notes, reads the entities (one query per entity set a note, rendered by ``sta_read``, so the
JSON is the HTTP API's), and hands the messages to paho-mqtt, whose own thread keeps the connection and
reconnects with backoff (1 s doubling to 60 s). While the broker is away the notes wait in the queue; a
full queue drops its oldest note, counted and logged. QoS 1: a message handed over is kept until the
broker acknowledges it and sent again after a reconnect, so a broker restart or a dropped connection
loses nothing already handed over; a subscriber may see one twice, with the same ``@iot.id``. Not
retained: a late subscriber must not take an old reading for a new one.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from prometheus_client import Counter
from sqlalchemy import select, tuple_
from sqlalchemy.engine import Engine

from miniapps.floodmap.models import FloodObservation
from miniapps.floodmap.sensorthings import ENTITY_SETS, VERSION, EntitySet, Links
from miniapps.floodmap.settings import MQTT_SCHEMES, FloodmapDeployment, read_deployment
from miniapps.floodmap.sta_batch import _target
from miniapps.floodmap.sta_options import Options
from miniapps.floodmap.sta_read import render_page
from plugins import Host

log = logging.getLogger(__name__)
MINIAPP = "floodmap"
RECEIVE_UPDATES = "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates"
QOS = 1
RECONNECT_MIN, RECONNECT_MAX = 1, 60  # seconds, doubling between attempts
PAHO_QUEUE = 1000  # messages paho holds unacknowledged or unsent; past it a message is refused and counted
# On /metrics beside the host's counters: published and refused count messages, dropped and failed changes.
OUTCOMES = Counter("superapp_floodmap_mqtt", "SensorThings MQTT updates by outcome", ["outcome"])


@dataclass(frozen=True, slots=True)
class Change:
    """What one commit did, as the worker needs it to read and publish: ``created`` entities (set, id),
    stored ``readings`` (datastream id, phenomenonTime) whose Observation ids the worker looks up, and
    ``updated`` entities (set, id, the properties the change set)."""

    base: str  # the SensorThings root as the request saw it (…/api/miniapps/floodmap/v1.1)
    created: tuple[tuple[str, int], ...] = ()
    readings: tuple[tuple[int, datetime], ...] = ()
    updated: tuple[tuple[str, int, frozenset[str]], ...] = ()


def deployment(host: Host) -> FloodmapDeployment:
    """The deploy-time MQTT settings of this host, read once."""
    slot = host.state(MINIAPP)
    found = getattr(slot, "deployment", None)
    if found is None:
        found = slot.deployment = read_deployment()
    return found


def server_settings(host: Host) -> dict[str, Any]:
    """The service root's ``serverSettings`` entry for MQTT: where to subscribe (empty when not configured).
    The class itself is not in ``conformance``: ``$select`` topics are not served (see the module)."""
    endpoints = deployment(host).endpoints
    return {RECEIVE_UPDATES: {"endpoints": endpoints}} if endpoints else {}


def publisher_of(host: Host) -> Publisher | None:
    """This host's publisher, started on first use; None when no broker is configured."""
    slot = host.state(MINIAPP)
    publisher = getattr(slot, "mqtt", None)
    if publisher is not None or not deployment(host).mqtt_url:
        return publisher
    # Two first requests at once make one publisher, not two: a lock per host (setdefault is atomic).
    with vars(slot).setdefault("mqtt_lock", threading.Lock()):
        if getattr(slot, "mqtt", None) is None:
            slot.mqtt = Publisher(host.engine, deployment(host))
    return slot.mqtt


def announce(host: Host, change: Change) -> None:
    """After a commit: queue ``change`` for publishing (never blocks, never raises)."""
    if not (change.created or change.readings or change.updated):
        return
    try:
        publisher = publisher_of(host)
        if publisher is not None:
            publisher.base = change.base
            publisher.put(change)
    except Exception:  # the data is stored; a live update is never worth failing the request for
        log.exception("could not queue a SensorThings MQTT update")


async def base_of(host: Host) -> str | None:
    """The SensorThings root for work without a request (the stale job): the public URL, else the one the
    last request saw; None before either is known."""
    if host.settings.public_url:
        return f"{host.settings.public_url}/api/miniapps/{MINIAPP}/{VERSION}"
    publisher = getattr(host.state(MINIAPP), "mqtt", None)
    return publisher.base if publisher is not None else None


async def start_on_load(event: Any, host: Host) -> None:
    """When the host starts: connect to the broker at once, so the first reading does not wait for it."""
    publisher_of(host)


def stop(host: Host) -> None:
    """Disconnect and stop this host's publisher (tests; a process that ends stops its threads anyway)."""
    publisher = getattr(host.state(MINIAPP), "mqtt", None)
    if publisher is not None:
        publisher.close()
        host.state(MINIAPP).mqtt = None


# --- What the routes saw commit, as changes ------------------------------------------------------------


def _moved(stations: list[Any]) -> tuple[tuple[str, int, frozenset[str]], ...]:
    """Stations whose alert level or staleness moved: their Thing's ``properties`` changed."""
    return tuple(("Things", s.thing_id, frozenset({"properties"})) for s in stations
                 if s.change is not None or s.came_back)


def after_ingest(base: str, outcome: Any) -> Change:
    """A pushed batch: its accepted readings, and the Things whose level or staleness moved."""
    return Change(base, readings=tuple((r.datastream_id, r.time) for r in outcome.results if r.status == "accepted"),
                  updated=_moved(outcome.stations))


def after_camera_image(base: str, thing_id: int) -> Change:
    """A camera's new snapshot: its Thing's ``properties.camera_image_at`` changed."""
    return Change(base, updated=(("Things", thing_id, frozenset({"properties"})),))


def after_stale(base: str, thing_ids: list[int]) -> Change:
    """Stations that fell silent: their Thing's ``properties.stale`` changed."""
    return Change(base, updated=tuple(("Things", t, frozenset({"properties"})) for t in thing_ids))


def _entity_of(link: str) -> tuple[str, int] | None:
    """``(set, id)`` of an ``.../Set(id)`` link or path."""
    name, _, rest = link.rsplit("/", 1)[-1].partition("(")
    ident = rest[:-1]
    return (name, int(ident)) if name in ENTITY_SETS and ident.isdigit() else None


def _set_properties(name: str, body: Any, *, json_patch: bool, replace: bool) -> frozenset[str]:
    """The properties a PATCH (merge or JSON Patch) or PUT sets."""
    fields = set(ENTITY_SETS[name].fields) - {"id", "selfLink"}
    if replace:
        return frozenset(fields)
    if json_patch and isinstance(body, list):
        named = {str(op.get("path", "")).lstrip("/").split("/")[0] for op in body if isinstance(op, dict)}
    else:
        named = set(body) if isinstance(body, dict) else set()
    return frozenset(named & fields)


def after_write(base: str, method: str, path: str, body: Any, reply: Any, *, json_patch: bool = False) -> Change:
    """One SensorThings write that succeeded: the entity it created or changed, and Things whose level moved."""
    moved = _moved(reply.stations)
    if method == "POST" and reply.status == 201 and isinstance(reply.body, dict):
        entity = _entity_of(reply.body.get("@iot.selfLink", ""))
        return Change(base, created=(entity,) if entity else (), updated=moved)
    entity = _entity_of(path)
    if method in ("PATCH", "PUT") and reply.status < 300 and entity is not None:
        props = _set_properties(entity[0], body, json_patch=json_patch, replace=method == "PUT")
        return Change(base, updated=((*entity, props), *moved))
    return Change(base, updated=moved)


def after_created_links(base: str, links: list[str], stations: list[Any]) -> Change:
    """CreateObservations: the selfLinks it answered (``error`` rows left out), and Things whose level moved."""
    return Change(base, created=tuple(e for e in (_entity_of(link) for link in links if link != "error") if e),
                  updated=_moved(stations))


def after_batch(base: str, answers: list[Any], stations: list[Any]) -> Change:
    """A ``$batch``: each write that was answered with success (a failed group answered none), in order."""
    created: list[tuple[str, int]] = []
    updated: list[tuple[str, int, frozenset[str]]] = list(_moved(stations))
    made: dict[str, str] = {}  # request id -> Set(id), for a later request's $<id>
    for answer in answers:
        for entry in answer if isinstance(answer, list) else [answer]:
            item = entry.item
            if entry.status >= 300 or item.method not in ("POST", "PATCH", "PUT"):
                continue
            if item.method == "POST" and isinstance(entry.body, dict):
                link = entry.body.get("@iot.selfLink", "")
                made[item.id] = link.rsplit("/", 1)[-1]
                entity = _entity_of(link)
                if entity:
                    created.append(entity)
                continue
            try:
                path, _ = _target(item.url, made)
            except Exception:
                continue
            entity = _entity_of(path) if "/" not in path else None
            if entity:
                updated.append((*entity, _set_properties(entity[0], item.body, replace=item.method == "PUT",
                                                         json_patch="json-patch" in item.content_type)))
    return Change(base, created=tuple(created), updated=tuple(updated))


# --- The worker --------------------------------------------------------------------------------------


class Publisher:
    """One process's connection to the broker, its bounded queue of changes and the worker that drains it."""

    def __init__(self, engine: Engine, config: FloodmapDeployment) -> None:
        self.engine = engine
        self.size = config.mqtt_queue_size
        self.dropped = 0  # changes dropped from a full queue (oldest first)
        self.refused = 0  # messages paho refused (its own queue full)
        self.published = 0  # messages handed to paho
        self.failed = 0  # changes that could not be read or rendered (logged)
        self.base: str | None = None  # the SensorThings root the last change was seen at
        self._pending: deque[Change] = deque()
        self._wake = threading.Condition()
        self._connected = threading.Event()
        self._closing = False
        url = urlsplit(config.mqtt_url or "")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"superapp-floodmap-{uuid.uuid4().hex[:12]}")
        if url.username:
            self.client.username_pw_set(unquote(url.username), unquote(url.password or "") or None)
        if url.scheme == "mqtts":
            self.client.tls_set()
        self.client.reconnect_delay_set(RECONNECT_MIN, RECONNECT_MAX)
        self.client.max_queued_messages_set(PAHO_QUEUE)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        # paho's thread connects (retrying the first connection too) and reconnects with backoff
        self.client.connect_async(url.hostname or "", url.port or MQTT_SCHEMES[url.scheme], keepalive=30)
        self.client.loop_start()
        self._worker = threading.Thread(target=self._run, name="floodmap-mqtt", daemon=True)
        self._worker.start()

    @property
    def connected(self) -> bool:
        """Whether the broker is connected now."""
        return self._connected.is_set()

    def queued(self) -> int:
        """Changes waiting in the queue."""
        return len(self._pending)

    def put(self, change: Change) -> None:
        """Queue ``change``; a full queue drops its oldest, counted (logged at 1, 10, 100, ... drops)."""
        with self._wake:
            if len(self._pending) >= self.size:
                self._pending.popleft()
                self.dropped += 1
                OUTCOMES.labels("dropped").inc()
                if _power_of_ten(self.dropped):
                    log.warning("SensorThings MQTT: queue full (%d changes, broker %s); %d dropped so far, oldest "
                                "first", self.size, "connected" if self.connected else "unreachable", self.dropped)
            self._pending.append(change)
            self._wake.notify()

    def close(self) -> None:
        """Stop the worker and disconnect (what is still queued is not published)."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._connected.set()  # a worker waiting for the broker wakes to see it is closing
        self._worker.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("SensorThings MQTT: the broker refused the connection: %s", reason)
            return
        log.info("SensorThings MQTT: connected to the broker")
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not self._closing:
            log.warning("SensorThings MQTT: lost the broker (%s); changes wait in the queue", reason)
        self._connected.clear()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
            while not self._connected.wait(timeout=1.0):
                if self._closing:
                    return
            with self._wake:
                if self._closing:
                    return
                change = self._pending.popleft() if self._pending else None
            if change is None:
                continue
            try:
                messages = render(self.engine, change)
            except Exception:
                self.failed += 1
                OUTCOMES.labels("failed").inc()
                log.exception("SensorThings MQTT: could not read the entities of a change")
                continue
            for topic, payload in messages:
                info = self.client.publish(topic, payload, qos=QOS, retain=False)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    self.refused += 1
                    OUTCOMES.labels("refused").inc()
                    if _power_of_ten(self.refused):
                        log.warning("SensorThings MQTT: %d messages refused (more than %d unacknowledged)",
                                    self.refused, PAHO_QUEUE)
                else:  # sent, or (not connected) kept by paho and sent after the reconnect
                    self.published += 1
                    OUTCOMES.labels("published").inc()


def _power_of_ten(n: int) -> bool:
    return n > 0 and 10 ** (len(str(n)) - 1) == n


# --- What a change publishes -------------------------------------------------------------------------


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _same_table(name: str) -> list[str]:
    """``name`` and the entity sets read from its table (a Location is also a HistoricalLocation and a
    FeatureOfInterest)."""
    model = ENTITY_SETS[name].model
    return [name] + [other for other, entity in ENTITY_SETS.items() if entity.model is model and other != name]


def _rows(db: Any, entity: EntitySet, ids: list[int]) -> list[Any]:
    return list(db.execute(entity.select().where(entity.table.c.id.in_(ids)).order_by(entity.table.c.id)))


def _containers(db: Any, entity: EntitySet, rows: list[Any]) -> dict[int, list[str]]:
    """For each new entity (by id), the navigation sets it joined: ``Datastreams(3)/Observations`` for an
    Observation of datastream 3. From each navigation property leading to a parent set that lists this set
    back; one query a navigation read through another table (an Observation's FeatureOfInterest)."""
    found: dict[int, list[str]] = {row.id: [] for row in rows}
    for nav in entity.navs.values():
        parent = ENTITY_SETS[nav.target]
        back = [name for name, other in parent.navs.items() if other.target == entity.name and other.many]
        if not back:
            continue
        if nav.via is not None:
            key, joined = nav.key_of(parent.table)
            pairs = db.execute(select(key, parent.table.c.id).select_from(joined).where(
                key.in_([getattr(row, nav.parent_key) for row in rows])))
            by_key: dict[Any, list[int]] = {}
            for mine, theirs in pairs:
                by_key.setdefault(mine, []).append(theirs)
            parents = {row.id: by_key.get(getattr(row, nav.parent_key), []) for row in rows}
        elif nav.child_key == "id":
            parents = {row.id: [getattr(row, nav.parent_key)] for row in rows}
        else:
            continue  # the entity's own children (a Datastream's Observations): none yet, it is new
        for ident, parent_ids in parents.items():
            found[ident].extend(f"{parent.name}({p})/{name}" for p in parent_ids if p is not None for name in back)
    return found


def render(engine: Engine, change: Change) -> list[tuple[str, bytes]]:
    """The (topic, payload) messages of ``change``, read in one connection: each entity as a GET answers it."""
    links = Links(change.base)
    messages: list[tuple[str, bytes]] = []
    with engine.connect() as db:
        created: dict[str, set[int]] = {}
        for name, ident in change.created:
            created.setdefault(name, set()).add(ident)
        if change.readings:
            observations = FloodObservation.__table__  # type: ignore[attr-defined]
            found = db.execute(select(observations.c.id).where(
                tuple_(observations.c.datastream_id, observations.c.phenomenon_time).in_(list(change.readings))))
            created.setdefault("Observations", set()).update(row.id for row in found)
        if "Things" in created:  # a new Thing's inline Locations and Datastreams are new too
            for name, column in (("Locations", "thing_id"), ("Datastreams", "thing_id")):
                table = ENTITY_SETS[name].table
                created.setdefault(name, set()).update(db.scalars(select(table.c.id).where(
                    table.c[column].in_(list(created["Things"])))))
        for name, ids in created.items():
            for alias in _same_table(name):
                entity = ENTITY_SETS[alias]
                rows = _rows(db, entity, sorted(ids))
                if not rows:
                    continue  # deleted since
                bodies = render_page(db, entity, rows, Options(), links)
                containers = _containers(db, entity, rows)
                for row, body in zip(rows, bodies, strict=True):
                    payload = _encode(body)
                    messages.append((f"{VERSION}/{alias}", payload))
                    messages.extend((f"{VERSION}/{path}", payload) for path in containers[row.id])
        for name, ident, props in change.updated:
            for alias in _same_table(name):
                entity = ENTITY_SETS[alias]
                rows = _rows(db, entity, [ident])
                if not rows:
                    continue
                [body] = render_page(db, entity, rows, Options(), links)
                messages.append((f"{VERSION}/{alias}({ident})", _encode(body)))
                messages.extend((f"{VERSION}/{alias}({ident})/{prop}", _encode({prop: body[prop]}))
                                for prop in entity.fields if prop in props and prop in body)
    return messages
