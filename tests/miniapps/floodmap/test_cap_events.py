"""CAP 1.2 for one station's event: the first alert, an escalation as an Update naming it, and the return to
normal as a closing Update naming both; each document valid against the OASIS CAP 1.2 schema; the Atom
index lists all three. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.etree import ElementTree as ET

import xmlschema

from miniapps.floodmap.warnings import announce_updates
from tests.miniapps.floodmap.conftest import KIM_LONG
from tests.miniapps.floodmap.moves import record_move

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "CAP-v1.2.xsd")


def test_one_escalating_and_ending_event_is_an_alert_then_updates_that_reference_it(fm_app, fm_client) -> None:
    station = fm_app.state.test_stations[KIM_LONG]
    host = fm_app.state.host

    def change(thing_id: int, from_level: int, to_level: int, value: float) -> list:
        return record_move(fm_app.state.engine, thing_id, from_level, to_level, value)

    for move in ((0, 1, 1.6), (1, 2, 2.6), (2, 0, 0.9)):  # each move committed, then announced, in turn
        asyncio.run(announce_updates(host, change(station, *move)))
    warnings = fm_client.get("/api/miniapps/floodmap/warnings").json()["warnings"]
    mine = sorted((w for w in warnings if w["station_id"] == station), key=lambda w: w["id"])
    assert [(w["level"], w["msg_type"]) for w in mine] == [(1, "Alert"), (2, "Update"), (0, "Update")]

    documents = []
    for warning in mine:
        answer = fm_client.get(warning["cap"])
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/cap+xml")
        SCHEMA.validate(answer.content.decode())  # raises, naming the element, when a document is invalid
        documents.append(ET.fromstring(answer.content))
    first, escalation, ending = documents

    def reference(alert: ET.Element) -> str:
        return ",".join(alert.findtext(f"{CAP}{name}") for name in ("sender", "identifier", "sent"))

    assert first.find(f"{CAP}references") is None
    assert escalation.findtext(f"{CAP}msgType") == "Update"
    assert escalation.findtext(f"{CAP}references") == reference(first)
    assert ending.findtext(f"{CAP}references").split() == [reference(first), reference(escalation)]
    english = ending.findall(f"{CAP}info")[1]
    assert (english.findtext(f"{CAP}responseType"), english.findtext(f"{CAP}urgency"),
            english.findtext(f"{CAP}severity")) == ("AllClear", "Past", "Minor")

    # the Atom index follows: every message, each saying whether it starts or updates the event
    feed = ET.fromstring(fm_client.get("/api/miniapps/floodmap/cap/feed.atom").content)
    terms = {entry.find(f"{ATOM}link").get("href").rsplit("/", 1)[1]: entry.find(f"{ATOM}category").get("term")
             for entry in feed.findall(f"{ATOM}entry")}
    assert [terms[f"{w['id']}.xml"] for w in mine] == ["Alert", "Update", "Update"]
    # the closing message is no warning in force; a new rise afterwards starts a new event
    asyncio.run(announce_updates(host, change(station, 0, 1, 1.7)))
    latest = fm_client.get("/api/miniapps/floodmap/warnings").json()["warnings"][0]
    assert latest["station_id"] == station and latest["msg_type"] == "Alert"
    alert = ET.fromstring(fm_client.get(latest["cap"]).content)
    assert alert.find(f"{CAP}references") is None
    SCHEMA.validate(fm_client.get(latest["cap"]).content.decode())


def test_the_schema_refuses_a_document_that_breaks_it() -> None:
    # the check can fail: an Update whose msgType is not one of CAP's words
    broken = ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier><sender>s</sender>'
              '<sent>2026-12-02T09:00:00+07:00</sent><status>Actual</status><msgType>Upgrade</msgType>'
              '<scope>Public</scope></alert>')
    assert not SCHEMA.is_valid(broken)
