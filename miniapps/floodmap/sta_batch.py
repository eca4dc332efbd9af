"""SensorThings batch requests: the multipart form of the Batch class (OData 4.0, change sets) and FROST's
JSON form (OData 4.01, atomicity groups), run by one executor.

A batch is up to ``MAX_REQUESTS`` reads and writes, answered in order. Requests outside a change set or
atomicity group commit one by one; those inside one commit together or not at all: they run on one
connection in one transaction (each write in a savepoint of its own, the ingest rules unchanged), and the
first refusal rolls back every write of the group. ``$<id>`` in a url (or ``{"@iot.id": "$<id>"}`` in a
body) stands for what an earlier request created; the id is its ``Content-ID`` or JSON ``id``.

A failed group answers: in multipart, one response for the change set (the refusal), as OData 4.0 says;
in JSON, the refusal for the request that failed and ``424 Failed Dependency`` for the group's others.
"""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.engine import Engine

from miniapps.floodmap import sensorthings, sta_paths, sta_write
from plugins import DomainError, loads_json

MAX_REQUESTS = 100
READ, WRITES = "GET", ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class Item:
    """One request of a batch: its id (JSON ``id`` or ``Content-ID``), method, url, body and group."""

    id: str
    method: str
    url: Any
    body: Any = None
    content_type: str = ""
    group: str | None = None
    refused: DomainError | None = None  # not a request at all: answered with this


@dataclass
class Entry:
    """The answer to one request."""

    item: Item
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _refusal(refused: DomainError) -> dict[str, Any]:
    return {"type": refused.type, "title": refused.title, "status": refused.status, "detail": refused.detail,
            **({"field": refused.field} if refused.field else {})}


def _counted(items: list[Item]) -> list[Item]:
    if not items or len(items) > MAX_REQUESTS:
        raise DomainError(400, f"a batch holds 1 to {MAX_REQUESTS} requests", field="body.requests")
    return items


# --- The two request formats ----------------------------------------------------------------------------


def json_items(body: Any) -> list[Item]:
    """The requests of a JSON batch ``{"requests": [...]}``; an atomicity group's requests are adjacent."""
    requests_ = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests_, list):
        raise DomainError(400, "a JSON batch is {\"requests\": [...]}", field="body.requests")
    items: list[Item] = []
    closed: set[str] = set()
    for position, raw in enumerate(requests_):
        if not isinstance(raw, dict):
            items.append(Item(str(position), "", None, refused=DomainError(
                400, "a batch request is an object with id, method and url", field="body.requests")))
            continue
        group = raw.get("atomicityGroup")
        if group is not None and not isinstance(group, str):
            raise DomainError(400, "atomicityGroup is a name", field="body.requests.atomicityGroup")
        if items and items[-1].group is not None and items[-1].group != group:
            closed.add(items[-1].group)
        if group in closed:
            raise DomainError(400, f"the requests of atomicity group {group!r} are not adjacent",
                              field="body.requests.atomicityGroup")
        headers = raw.get("headers") if isinstance(raw.get("headers"), dict) else {}
        content_type = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
        items.append(Item(str(raw.get("id", position)), str(raw.get("method", "")).upper(), raw.get("url"),
                          raw.get("body"), content_type, group))
    return _counted(items)


def multipart_items(content_type: str, body: bytes) -> tuple[list[Item], str]:
    """The requests of a ``multipart/mixed`` batch (a change set is a nested ``multipart/mixed`` part);
    also the boundary style to answer with."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.compat32)
    if not message.is_multipart() or not message.get_boundary():
        raise DomainError(400, "a multipart batch is multipart/mixed with a boundary", field="header.content-type")
    items: list[Item] = []
    for position, part in enumerate(message.get_payload()):
        if part.get_content_type() == "multipart/mixed":
            group = f"changeset{position}"
            inner = part.get_payload() if part.is_multipart() else []
            if not inner:
                raise DomainError(400, "a change set holds one or more requests", field="body")
            for inner_position, request in enumerate(inner):
                items.append(_http_part(request, f"{position}.{inner_position}", group))
        else:
            items.append(_http_part(part, str(position), None))
    return _counted(items), message.get_boundary()


def _http_part(part: Any, position: str, group: str | None) -> Item:
    """One ``application/http`` part: a request line, headers, a blank line and a JSON body."""
    if part.get_content_type() != "application/http":
        return Item(position, "", None, group=group, refused=DomainError(
            400, "each part of a batch is application/http (or a change set, multipart/mixed)", field="body"))
    raw = part.get_payload(decode=True) or b""
    head, _, payload = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").strip().split("\n")
    words = lines[0].split()
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    ident = str(part.get("Content-ID") or headers.get("content-id") or position).strip("<>")
    if len(words) < 2:
        return Item(ident, "", None, group=group, refused=DomainError(
            400, "a batch part starts with a request line such as GET Things(1) HTTP/1.1", field="body"))
    body = loads_json(payload.strip()) if payload.strip() else None
    return Item(ident, words[0].upper(), words[1], body, headers.get("content-type", ""), group)


# --- Running them -----------------------------------------------------------------------------------------


def _target(text: Any, created: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A request's path relative to the version root (``$<id>`` replaced by what request <id> created)
    and its query options."""
    if not isinstance(text, str) or not text:
        raise DomainError(400, "each request has a url such as Things(1) or Datastreams(1)/Observations",
                          field="body.requests.url")
    path, _, query = text.partition("?")
    marker = f"/{sensorthings.VERSION}/"
    path = path.split(marker, 1)[1] if marker in path else path.lstrip("/")
    if path.startswith("$"):
        head, _, rest = path[1:].partition("/")
        if head not in created:
            raise DomainError(400, f"${head} names no earlier request that created an entity",
                              field="body.requests.url")
        path = created[head] + (f"/{rest}" if rest else "")
    return path, dict(parse_qsl(query))


def _with_created(value: Any, created: dict[str, str]) -> Any:
    """``{"@iot.id": "$1"}`` in a body: the id request 1 created."""
    if isinstance(value, dict):
        ident = value.get("@iot.id")
        if isinstance(ident, str) and ident.startswith("$") and ident[1:] in created:
            return {**value, "@iot.id": int(created[ident[1:]].rsplit("(", 1)[1][:-1])}
        return {k: _with_created(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_created(v, created) for v in value]
    return value


def _one(bind: sta_write.Bind, item: Item, created: dict[str, str], writer: sta_write.Writer | DomainError,
         links: sensorthings.Links) -> tuple[Entry, list[Any]]:
    """Answer one request on ``bind``; a refusal is raised."""
    if item.refused is not None:
        raise item.refused
    path, params = _target(item.url, created)
    if item.method == READ:
        with sta_write.reading(bind) as db:
            answer = sta_paths.resolve(db, path, params, links)
        return Entry(item, 200, answer.json if answer.json is not None else answer.text), []
    if item.method not in WRITES:
        raise DomainError(405, "a batch request's method is GET, POST, PATCH, PUT or DELETE",
                          field="body.requests.method")
    if isinstance(writer, DomainError):
        raise writer
    reply = sta_write.apply(bind, item.method, path, _with_created(item.body, created), writer, links,
                            json_patch="json-patch" in item.content_type)
    if reply.status == 201:
        created[item.id] = reply.body["@iot.selfLink"].rsplit("/", 1)[1]
    return Entry(item, reply.status, reply.body, reply.headers), reply.stations


def _groups(items: list[Item]) -> Iterable[list[Item]]:
    """Runs of the batch: each request alone, or an atomicity group's requests together."""
    run: list[Item] = []
    for item in items:
        if run and (item.group is None or item.group != run[0].group):
            yield run
            run = []
        run.append(item)
        if item.group is None:
            yield run
            run = []
    if run:
        yield run


def run(engine: Engine, items: list[Item], writer: sta_write.Writer | DomainError,
        links: sensorthings.Links) -> tuple[list[Entry | list[Entry]], list[Any]]:
    """Answer every request in order; a group's answers come as one list (or, failed, one Entry for the
    refusal followed by 424 for the others). Also the stations whose state moved, to announce."""
    created: dict[str, str] = {}
    answers: list[Entry | list[Entry]] = []
    stations: list[Any] = []
    for group in _groups(items):
        if group[0].group is None:
            try:
                entry, moved = _one(engine, group[0], created, writer, links)
            except DomainError as refused:
                entry, moved = Entry(group[0], refused.status, _refusal(refused)), []
            answers.append(entry)
            stations.extend(moved)
            continue
        answers.append(_atomically(engine, group, created, writer, links, stations))
    return answers, stations


def _atomically(engine: Engine, group: list[Item], created: dict[str, str], writer: sta_write.Writer | DomainError,
                links: sensorthings.Links, stations: list[Any]) -> list[Entry]:
    """Run ``group`` in one transaction: every write commits, or none."""
    staged = dict(created)
    entries: list[Entry] = []
    moved: list[Any] = []
    with engine.connect() as connection:
        connection.begin()
        if connection.dialect.name == "sqlite":
            # pysqlite sends no BEGIN before the first write, so the first SAVEPOINT would open (and its
            # RELEASE commit) the transaction; take the write lock now, as one transaction
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        transaction = sta_write.Transaction(connection)
        for item in group:
            try:
                entry, news = _one(transaction, item, staged, writer, links)
            except DomainError as refused:
                connection.rollback()
                failed = Entry(item, refused.status, _refusal(refused))
                return [failed if other is item else Entry(other, 424, _refusal(DomainError(
                    424, f"rolled back: request {item.id!r} of atomicity group {item.group!r} was refused",
                    field="body.requests.atomicityGroup"))) for other in group]
            entries.append(entry)
            moved.extend(news)
        connection.commit()
    created.update(staged)
    stations.extend(moved)
    return entries


# --- Answering in the request's format -------------------------------------------------------------------


def json_answer(answers: list[Entry | list[Entry]]) -> dict[str, Any]:
    """``{"responses": [...]}``, one per request, a group's with its ``atomicityGroup``."""
    responses = []
    for answer in answers:
        for entry in answer if isinstance(answer, list) else [answer]:
            response: dict[str, Any] = {"id": entry.item.id, "status": entry.status}
            if entry.item.group is not None:
                response["atomicityGroup"] = entry.item.group
            if entry.headers.get("Location"):
                response["headers"] = {"location": entry.headers["Location"]}
            if entry.body is not None:
                response["body"] = entry.body
            responses.append(response)
    return {"responses": responses}


def multipart_answer(answers: list[Entry | list[Entry]]) -> tuple[bytes, str]:
    """The multipart/mixed body and its content type: a change set's answers in a nested part, a failed
    change set's as the one refusal."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[bytes] = []
    for answer in answers:
        out.append(f"--{boundary}\r\n".encode())
        if isinstance(answer, list) and all(e.status < 400 for e in answer):
            inner = f"changeset_{uuid.uuid4()}"
            out.append(f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode())
            for entry in answer:
                out.append(f"--{inner}\r\n".encode() + _http_response(entry))
            out.append(f"--{inner}--\r\n".encode())
        elif isinstance(answer, list):
            out.append(_http_response(next(e for e in answer if e.status != 424)))
        else:
            out.append(_http_response(answer))
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/mixed; boundary={boundary}"


def _http_response(entry: Entry) -> bytes:
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if entry.item.id:
        head.append(f"Content-ID: {entry.item.id}")
    status = HTTPStatus(entry.status)
    inner = [f"HTTP/1.1 {status.value} {status.phrase}"]
    inner += [f"{name}: {value}" for name, value in entry.headers.items() if name == "Location"]
    payload = b""
    if entry.body is not None:
        text = entry.body if isinstance(entry.body, str) else json.dumps(entry.body, ensure_ascii=False)
        kind = "text/plain" if isinstance(entry.body, str) else (
            "application/problem+json" if entry.status >= 400 else "application/json")
        inner.append(f"Content-Type: {kind}; charset=utf-8")
        payload = text.encode()
    return ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(inner) + "\r\n\r\n").encode() + payload + b"\r\n"
