"""Bearer tokens with scopes (read, write, admin), loaded from a file or a mounted Secret.

The token file is YAML or JSON: ``{"tokens": [{"name": "ci", "token": "...", "scopes": ["read"]}]}``.
Tokens are kept only as SHA-256 digests and compared with ``hmac.compare_digest`` against every
entry, so the time taken does not depend on which token (if any) matched. ``admin`` implies
``write``, which implies ``read``. A missing or unknown token is 401; a known token lacking the
route's scope is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import yaml

from fortress.http.errors import forbidden, unauthorized


class Scope(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls[text.upper()]
        except KeyError as error:
            raise ValueError(f"unknown scope {text!r}: expected read, write or admin") from error


@dataclass(frozen=True)
class Principal:
    """Who called: the token's name and its highest scope."""

    name: str
    scope: Scope


@dataclass(frozen=True)
class _Entry:
    name: str
    digest: bytes
    scope: Scope


class TokenStore:
    """The known tokens, as digests."""

    def __init__(self, entries: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        self._entries = tuple(
            _Entry(name, hashlib.sha256(token.encode()).digest(), max(Scope.parse(s) for s in scopes))
            for name, token, scopes in entries
        )

    @classmethod
    def from_text(cls, text: str) -> TokenStore:
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
            raise ValueError("token file must hold a 'tokens' list")
        entries = []
        for index, item in enumerate(document["tokens"]):
            if not isinstance(item, dict) or not item.get("token") or not item.get("scopes"):
                raise ValueError(f"tokens[{index}] needs 'token' and 'scopes'")
            entries.append(
                (str(item.get("name", f"token-{index}")), str(item["token"]), list(item["scopes"]))
            )
        return cls(entries)

    @classmethod
    def from_file(cls, path: Path) -> TokenStore:
        """Blocking read: call at start-up or through ``asyncio.to_thread``."""
        return cls.from_text(path.read_text())

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer ...`` header; 401 when absent or unknown."""
        if not authorization or not authorization.startswith("Bearer "):
            raise unauthorized()
        digest = hashlib.sha256(authorization[len("Bearer ") :].strip().encode()).digest()
        found: _Entry | None = None
        for entry in self._entries:  # no early exit: every entry is compared
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        if found is None:
            raise unauthorized()
        return Principal(found.name, found.scope)

    @staticmethod
    def require(principal: Principal, scope: Scope) -> None:
        if principal.scope < scope:
            raise forbidden(f"token {principal.name!r} lacks the {scope.name.lower()} scope")
