"""Environment configuration, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from error


@dataclass(frozen=True)
class Settings:
    """What the operator reads from its environment."""

    namespaces: tuple[str, ...] = ()
    metrics_port: int = 9090
    liveness_port: int = 8080
    kubeconfig: str | None = None
    database_dsn: str | None = None
    api_tokens_file: str | None = None
    identity: str = field(default_factory=lambda: os.environ.get("HOSTNAME", "fortress"))

    @classmethod
    def from_env(cls) -> Settings:
        namespaces = tuple(n for n in os.environ.get("FORTRESS_NAMESPACES", "").split(",") if n.strip())
        return cls(
            namespaces=tuple(n.strip() for n in namespaces),
            metrics_port=_int("FORTRESS_METRICS_PORT", 9090),
            liveness_port=_int("FORTRESS_LIVENESS_PORT", 8080),
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            database_dsn=os.environ.get("FORTRESS_DATABASE_DSN") or None,
            api_tokens_file=os.environ.get("FORTRESS_API_TOKENS_FILE") or None,
        )
