"""SensorThings query options: ``$top $skip $count $orderby $filter $expand $select $skiptoken
$resultFormat`` parsed and checked against an entity set; ``$expand`` items take the same options nested,
to ``MAX_EXPAND_DEPTH``.

Query cost is bounded here: ``$top`` at most ``MAX_TOP``, ``$skip`` at most ``MAX_SKIP`` (deeper pages
follow ``@iot.nextLink``, whose ``$skiptoken`` holds the last row's sort key), ``$expand`` at most
``MAX_EXPAND_DEPTH`` levels.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from miniapps.floodmap import sta_filter
from miniapps.floodmap.sensorthings import ENTITY_SETS, EntitySet, _kind
from plugins import DomainError, json_nesting_exceeds

DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_EXPAND_DEPTH = 3
MAX_SKIP = 10_000


@dataclass
class Options:
    """The query options of one level of a request (the top level, or one ``$expand`` item)."""

    top: int = DEFAULT_TOP
    skip: int = 0
    after: list[Any] | None = None  # from $skiptoken: the sort key of the last row of the previous page
    count: bool = False
    orderby: list[tuple[Any, bool]] = field(default_factory=list)  # (expression AST, descending)
    orderby_text: str = ""
    filter: Any = None  # the expression AST
    filter_text: str = ""
    select: list[str] | None = None
    result_format: str | None = None
    expand: dict[str, Options] = field(default_factory=dict)


def _bad(option: str, detail: str) -> DomainError:
    return DomainError(400, f"{option}: {detail}", field=f"query.{option}")


_KNOWN = ("$top", "$skip", "$count", "$orderby", "$filter", "$expand", "$select", "$skiptoken", "$resultFormat")


def parse_options(raw: dict[str, str], entity: EntitySet, *, depth: int = 0) -> Options:
    """Options from query parameters (or from an ``$expand`` item's ``(...)``), checked against ``entity``."""
    options = Options()
    if "$top" in raw:
        options.top = _int_option("$top", raw["$top"], MAX_TOP)
    if "$skip" in raw:
        options.skip = _int_option("$skip", raw["$skip"], MAX_SKIP,
                                   hint="; for deeper pages follow @iot.nextLink, which pages by key")
    if "$count" in raw:
        if raw["$count"].lower() not in ("true", "false"):
            raise _bad("$count", "use true or false")
        options.count = raw["$count"].lower() == "true"
    if "$orderby" in raw:
        options.orderby, options.orderby_text = _orderby(raw["$orderby"]), raw["$orderby"].strip()
    if "$filter" in raw:
        options.filter, options.filter_text = sta_filter.parse(raw["$filter"]), raw["$filter"].strip()
    if "$select" in raw:
        options.select = _select(raw["$select"], entity)
    if "$resultFormat" in raw:
        if raw["$resultFormat"] != "dataArray" or entity.name != "Observations" or depth:
            raise _bad("$resultFormat", "dataArray, on a collection of Observations")
        options.result_format = "dataArray"
    if "$skiptoken" in raw:
        options.after = _decode_token(raw["$skiptoken"])
    if "$expand" in raw:
        if depth >= MAX_EXPAND_DEPTH:
            raise _bad("$expand", f"at most {MAX_EXPAND_DEPTH} levels deep")
        options.expand = parse_expand(raw["$expand"], entity, depth=depth)
    return options


def _int_option(name: str, value: str, most: int, *, hint: str = "") -> int:
    # isdigit() alone also passes "²", which int() refuses; the length cap keeps int() off huge strings
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > most:
        raise _bad(name, f"a whole number from 0 to {most}{hint}")
    return int(value)


def _select(value: str, entity: EntitySet) -> list[str]:
    names = [part.strip() for part in value.split(",")]
    allowed = set(entity.fields) | set(entity.navs)
    for name in names:
        if name not in allowed:
            raise _bad("$select", f"{name!r}: select from {', '.join(sorted(allowed))}")
    return list(dict.fromkeys(names))


def _encode_token(key: list[Any]) -> str:
    """A page's last sort key as an opaque, URL-safe ``$skiptoken``."""
    plain = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else _kind(v) if hasattr(v, "value") else v
             for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> list[Any]:
    """The sort key a ``$skiptoken`` holds (checked against the order when the query is built)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if json_nesting_exceeds(raw, 2):  # a forged token may nest deeper than the parser goes; ours never do
            raise ValueError("nested")
        key = json.loads(raw)
    except ValueError:
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink") from None
    if not isinstance(key, list) or not all(isinstance(v, int | float | str) for v in key):
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
    return key


def _orderby(value: str) -> list[tuple[Any, bool]]:
    """``expr [asc|desc], ...`` (either case) as (AST, descending) pairs."""
    order = []
    for part in _split_top(value, ",", option="$orderby"):
        words = part.strip().rsplit(None, 1)
        if not words:
            raise _bad("$orderby", "an empty item; write e.g. phenomenonTime desc")
        descending = False
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            descending = words[1].lower() == "desc"
            expression = words[0]
        else:
            expression = part.strip()
        order.append((sta_filter.parse(expression, "$orderby"), descending))
    return order


def _split_top(text: str, separator: str, *, option: str = "$expand") -> list[str]:
    """Split at ``separator`` outside parentheses and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise _bad(option, "unbalanced parentheses")
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise _bad(option, "unbalanced parentheses")
    parts.append("".join(current))
    return parts


def parse_expand(text: str, entity: EntitySet, *, depth: int = 0) -> dict[str, Options]:
    """``Datastreams/Observations($top=1;$orderby=phenomenonTime desc),Locations`` as a tree of Options."""
    tree: dict[str, Options] = {}
    for item in _split_top(text, ","):
        item = item.strip()
        segments = _split_top(item, "/")
        node_entity, node_tree, level = entity, tree, depth
        for segment in segments:
            segment = segment.strip()
            name, _, inner = segment.partition("(")
            if name not in node_entity.navs or (inner and not inner.endswith(")")):
                raise _bad("$expand", f"{segment!r} is not a navigation property of {node_entity.name} "
                                      f"({', '.join(sorted(node_entity.navs))})")
            inner = inner[:-1]
            target = ENTITY_SETS[node_entity.navs[name].target]
            raw: dict[str, str] = {}
            for option in _split_top(inner, ";") if inner.strip() else []:
                key, sep, value = option.partition("=")
                if not sep or key.strip() not in _KNOWN or key.strip() in ("$skiptoken", "$resultFormat"):
                    raise _bad("$expand", f"unknown option {option.strip()!r} in {name}(...)")
                raw[key.strip()] = value.strip()
            if level + 1 > MAX_EXPAND_DEPTH:
                raise _bad("$expand", f"at most {MAX_EXPAND_DEPTH} levels deep")
            existing = node_tree.get(name)
            options = existing if existing is not None and not raw else parse_options(raw, target, depth=level + 1)
            if existing is not None and options is not existing:
                options.expand = {**existing.expand, **options.expand}
            node_tree[name] = options
            node_entity, node_tree, level = target, options.expand, level + 1
    return tree
