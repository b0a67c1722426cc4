"""libpq connection strings: parse and format ``key=value`` conninfo and URIs (pure).

Used to point a standby at a new primary: the standby keeps its own settings (application_name,
which ``synchronous_standby_names`` matches, SSL options) and takes the upstream's address and
credentials from the new primary's connection Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

# Keys that say where and as whom to connect: replaced wholesale when the upstream changes.
ADDRESS_KEYS = ("host", "hostaddr", "port", "user", "password", "passfile", "dbname")


def parse_conninfo(text: str) -> dict[str, str]:
    """Parse ``host=a port=5432 application_name='x y'``; ValueError naming the problem."""
    result: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return result
        start = i
        while i < n and text[i] not in "= \t\n":
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if not key or i >= n or text[i] != "=":
            raise ValueError(f"conninfo: expected key=value at position {start}")
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value_chars: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"conninfo: unterminated quoted value for {key!r}")
                char = text[i]
                if char == "\\" and i + 1 < n:
                    value_chars.append(text[i + 1])
                    i += 2
                    continue
                if char == "'":
                    i += 1
                    break
                value_chars.append(char)
                i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    value_chars.append(text[i + 1])
                    i += 2
                    continue
                value_chars.append(text[i])
                i += 1
        result[key] = "".join(value_chars)


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def format_conninfo(params: Mapping[str, str]) -> str:
    """``{"host": "a", "application_name": "x y"}`` -> ``host=a application_name='x y'``."""
    for key in params:
        if not key or not all(c.isalnum() or c == "_" for c in key):
            raise ValueError(f"conninfo: invalid key {key!r}")
    return " ".join(f"{k}={_quote(v)}" for k, v in params.items())


def dsn_params(dsn: str) -> dict[str, str]:
    """The parameters of a DSN given as a ``postgresql://`` URI or as key=value conninfo."""
    if "://" not in dsn:
        return parse_conninfo(dsn)
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"DSN scheme must be postgresql://, not {parts.scheme}://")
    params: dict[str, str] = {}
    if parts.hostname:
        params["host"] = unquote(parts.hostname)
    if parts.port:
        params["port"] = str(parts.port)
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    if parts.path and parts.path != "/":
        params["dbname"] = unquote(parts.path.lstrip("/"))
    params.update(dict(parse_qsl(parts.query)))
    return params


def replication_conninfo(current: str | None, upstream_dsn: str, application_name: str | None = None) -> str:
    """The ``primary_conninfo`` a standby needs to stream from ``upstream_dsn``.

    The standby's own options (application_name, SSL, keepalives) are kept; address and credentials
    come from the upstream's DSN; ``dbname`` is dropped (a walreceiver connects for replication).
    """
    mine = parse_conninfo(current) if current else {}
    upstream = dsn_params(upstream_dsn)
    merged = {k: v for k, v in mine.items() if k not in ADDRESS_KEYS}
    merged.update({k: v for k, v in upstream.items() if k != "dbname"})
    if application_name:
        merged["application_name"] = application_name
    elif "application_name" in mine:
        merged["application_name"] = mine["application_name"]
    return format_conninfo(merged)
