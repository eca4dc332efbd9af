"""Warnings as CAP 1.2 (OASIS Common Alerting Protocol) alerts, and an Atom index of them.

One ``<info>`` block per language (vi-VN, en-US); each unit warned is an ``<area>`` with its name and
a circle around its centroid whose area matches the unit's (no polygons are available).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from miniapps.floodmap.models import FloodWarning
from plugins import HUE_TIME

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
SENDER = "floodmap@hue-s.example.org"
# Level 0 is the message closing an event (the station is back to normal): an Update with AllClear.
SEVERITY = {0: "Minor", 1: "Moderate", 2: "Severe", 3: "Extreme"}
URGENCY = {0: "Past", 1: "Expected", 2: "Immediate", 3: "Immediate"}
RESPONSE = {0: "AllClear", 1: "Monitor", 2: "Prepare", 3: "Evacuate"}


def cap_time(value: datetime) -> str:
    """CAP date-times carry an explicit offset and no fraction ('Z' is not allowed): Hue time."""
    return value.astimezone(HUE_TIME).replace(microsecond=0).isoformat()


def cap_reference(warning: FloodWarning) -> str:
    """How a later CAP message names this one in ``references``: ``sender,identifier,sent``."""
    return f"{SENDER},{warning.identifier},{cap_time(warning.issued_at)}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, ns: str = CAP_NS) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        element.text = text
    return element


def alert_xml(warning: FloodWarning, *, units: dict[str, Any], station: dict[str, Any] | None, base_url: str) -> bytes:
    """The CAP 1.2 document of one warning; ``units`` maps unit ids to OrgUnit rows (names, centroids)."""
    ET.register_namespace("", CAP_NS)
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", warning.identifier)
    _sub(alert, "sender", SENDER)
    _sub(alert, "sent", cap_time(warning.issued_at))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", warning.msg_type)
    _sub(alert, "scope", "Public")
    if warning.cap_references:  # the schema's order: scope, ..., references, incidents, info
        _sub(alert, "references", warning.cap_references)
    for language, title, body, sender_name in (
        ("vi-VN", warning.title_vi, warning.body_vi, "Trung tâm Giám sát, điều hành đô thị thông minh Huế"),
        ("en-US", warning.title_en, warning.body_en, "Hue Intelligent Operation Centre"),
    ):
        info = _sub(alert, "info")
        _sub(info, "language", language)
        _sub(info, "category", "Met")
        _sub(info, "event", "Lũ lụt" if language == "vi-VN" else "Flood")
        _sub(info, "responseType", RESPONSE[warning.level])
        _sub(info, "urgency", URGENCY[warning.level])
        _sub(info, "severity", SEVERITY[warning.level])
        _sub(info, "certainty", "Likely" if warning.manual and warning.level else "Observed")
        _sub(info, "effective", cap_time(warning.issued_at))
        _sub(info, "expires", cap_time(warning.expires_at))
        _sub(info, "senderName", sender_name)
        _sub(info, "headline", title[:160])
        _sub(info, "description", body)
        _sub(info, "web", f"{base_url}/m/floodmap/warnings/{warning.id}")
        if station is not None:
            parameter = _sub(info, "parameter")
            _sub(parameter, "valueName", "station")
            _sub(parameter, "value", station["code"])
        for unit_id in warning.units:
            unit = units.get(unit_id)
            area = _sub(info, "area")
            name = unit_id if unit is None else (unit.name_vi if language == "vi-VN" else unit.name_en)
            _sub(area, "areaDesc", name)
            if unit is not None and unit.lat is not None and unit.lon is not None:
                radius_km = math.sqrt((unit.area_km2 or 1.0) / math.pi)
                _sub(area, "circle", f"{unit.lat:.4f},{unit.lon:.4f} {radius_km:.2f}")
            _sub(area, "geocode")
            geocode = area[-1]
            _sub(geocode, "valueName", "hue-unit")
            _sub(geocode, "value", unit_id)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def index_atom(warnings: list[FloodWarning], *, base_url: str, updated: datetime) -> bytes:
    """An Atom feed with one entry per warning, each linking to its CAP document."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", f"{base_url}/api/miniapps/floodmap/cap/feed.atom", ATOM_NS)
    _sub(feed, "title", "Hue flood warnings (CAP 1.2)", ATOM_NS)
    _sub(feed, "updated", cap_time(updated), ATOM_NS)
    author = _sub(feed, "author", None, ATOM_NS)
    _sub(author, "name", "Hue-S flood map", ATOM_NS)
    link = _sub(feed, "link", None, ATOM_NS)
    link.set("rel", "self")
    link.set("href", f"{base_url}/api/miniapps/floodmap/cap/feed.atom")
    for warning in warnings:
        entry = _sub(feed, "entry", None, ATOM_NS)
        _sub(entry, "id", f"urn:cap:{warning.identifier}", ATOM_NS)
        _sub(entry, "title", warning.title_en, ATOM_NS)
        _sub(entry, "updated", cap_time(warning.issued_at), ATOM_NS)
        _sub(entry, "summary", warning.body_en, ATOM_NS)
        # The entry says whether it starts an event (Alert) or updates or closes one (Update)
        _sub(entry, "category", None, ATOM_NS).set("term", warning.msg_type)
        alternate = _sub(entry, "link", None, ATOM_NS)
        alternate.set("rel", "alternate")
        alternate.set("type", "application/cap+xml")
        alternate.set("href", f"{base_url}/api/miniapps/floodmap/cap/{warning.id}.xml")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
