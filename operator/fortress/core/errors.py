"""Describing errors for status, Events and logs without the secrets they may carry.

A connection error can quote its connection string: libpq and asyncpg echo DSNs in several forms
(``postgresql://u:pw@h/db``, ``postgresql://u@h/db?password=pw``, ``host=h password=pw``, several
hosts at once). :func:`describe` is the one way every subsystem turns an exception into text: it
replaces each secret value it is told about with the name of its Secret and key, then scrubs any
credential still recognisable by shape. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

HIDDEN = "***"
MAX_LENGTH = 1000

# Keys whose value is a credential, in conninfo strings, URI queries and JSON-ish text.
_SECRET_KEYS = r"(?:password|passwd|pwd|sslpassword|sslkey|token|secret|api[_-]?key|access[_-]?key)"
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s?#]*):(?P<pw>[^@\s]*)@")
_QUERY_SECRET = re.compile(rf"(?P<key>[?&;]{_SECRET_KEYS}=)(?P<value>[^&\s#'\"]*)", re.IGNORECASE)
_CONNINFO_QUOTED = re.compile(rf"(?P<key>\b{_SECRET_KEYS}\s*=\s*)'(?:\\.|[^'\\])*'", re.IGNORECASE)
_CONNINFO_PLAIN = re.compile(rf"(?P<key>\b{_SECRET_KEYS}\s*=\s*)(?P<value>[^\s'\",;&]+)", re.IGNORECASE)
_JSON_SECRET = re.compile(rf"(?P<key>[\"']{_SECRET_KEYS}[\"']\s*:\s*)[\"'][^\"']*[\"']", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{6,}")


@dataclass(frozen=True)
class Secret:
    """A secret value in play, and how to name it instead: ``Secret ns/name key dsn``."""

    value: str
    label: str

    @classmethod
    def of(cls, value: str, namespace: str, name: str, key: str) -> Secret:
        where = f"{namespace}/{name}" if namespace else name
        return cls(value, f"<Secret {where} key {key}>")


def secret_parts(value: str) -> list[str]:
    """The credential parts of a connection string: the whole value and each password in it."""
    parts = [value]
    text = value.strip()
    if "://" in text:
        try:
            split = urlsplit(text)
        except ValueError:
            split = None
        if split is not None:
            userinfo = split.netloc.rsplit("@", 1)[0] if "@" in split.netloc else ""
            parts += [userinfo.split(":", 1)[1]] if ":" in userinfo else []  # never a host:port
            parts += [v for k, v in parse_qsl(split.query) if re.fullmatch(_SECRET_KEYS, k, re.I) and v]
    for match in _CONNINFO_QUOTED.finditer(text):
        quoted = match.group(0)[len(match.group("key")) :]
        parts.append(quoted.strip("'").replace("\\'", "'"))
    parts += [m.group("value") for m in _CONNINFO_PLAIN.finditer(text)]
    unique = {p for p in parts if len(p) >= 3}
    unique |= {unquote(p) for p in unique}
    return sorted(unique, key=len, reverse=True)  # longest first: a DSN before the password inside it


def scrub(text: str, secrets: Iterable[Secret] = ()) -> str:
    """``text`` with every given secret named instead of shown, and credentials hidden by shape."""
    for secret in secrets:
        for part in secret_parts(secret.value):
            text = text.replace(part, secret.label if part == secret.value else HIDDEN)
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{HIDDEN}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['key']}{HIDDEN}", text)
    text = _CONNINFO_QUOTED.sub(lambda m: f"{m['key']}{HIDDEN}", text)
    text = _CONNINFO_PLAIN.sub(lambda m: f"{m['key']}{HIDDEN}" if m["value"] != HIDDEN else m[0], text)
    text = _JSON_SECRET.sub(lambda m: f'{m["key"]}"{HIDDEN}"', text)
    return _BEARER.sub(lambda m: f"{m['key']}{HIDDEN}", text)


def _api_message(error: BaseException) -> str | None:
    """The API server's own message of a Kubernetes ApiException (not its whole response)."""
    status = getattr(error, "status", None)
    if not isinstance(status, int) or not hasattr(error, "body"):
        return None
    body = getattr(error, "body", None)
    message = None
    try:
        decoded = json.loads(body) if isinstance(body, (str, bytes)) and body else None
        if isinstance(decoded, dict):
            message = decoded.get("message")
    except ValueError:
        message = str(body)[:300] if body else None
    return f"HTTP {status}: {message or getattr(error, 'reason', '') or 'no message'}"


def describe(error: BaseException, secrets: Iterable[Secret] = (), limit: int = MAX_LENGTH) -> str:
    """One line about ``error``: its kind and message, secrets named by Secret and key, never shown."""
    text = _api_message(error)
    if text is None:
        message = " ".join(str(error).split())
        name = type(error).__name__
        text = f"{name}: {message}" if message and message != name else name
    return scrub(text, list(secrets))[:limit]


def endpoint(dsn: str) -> str:
    """Where a connection string points, without credentials: ``host:port/dbname`` (hosts comma-joined)."""
    text = dsn.strip()
    if "://" in text:
        try:
            split = urlsplit(text)
        except ValueError:
            return "an unparseable connection string"
        hosts = split.netloc.rsplit("@", 1)[-1] or "localhost"
        query = dict(parse_qsl(split.query))
        hosts = query.get("host", hosts)
        database = split.path.lstrip("/") or query.get("dbname", "")
    else:
        pairs = dict(re.findall(r"(\w+)\s*=\s*('(?:\\.|[^'\\])*'|\S+)", text))
        values = {k: v.strip("'") for k, v in pairs.items()}
        hosts = values.get("host") or values.get("hostaddr") or "localhost"
        if "port" in values:
            hosts = ",".join(
                f"{h}:{p}" for h, p in zip(hosts.split(","), values["port"].split(","), strict=False)
            )
        database = values.get("dbname", "")
    return scrub(f"{hosts}/{database}" if database else hosts)


def database(dsn: str | None, secret: Secret | None = None) -> str:
    """A database named for messages: its Secret and key, and where it points (never credentials)."""
    label = secret.label if secret is not None else "the database"
    return f"{label} ({endpoint(dsn)})" if dsn else label
