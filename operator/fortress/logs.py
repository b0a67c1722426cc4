"""How the operator logs: text or JSON lines, each line about an object prefixed with ``[namespace/name]``.

Kopf hands every handler an object logger that carries the object's reference (``k8s_ref``); its
prefixing formatters put ``[namespace/name]`` before the message (and, in JSON, the reference under
``object``). :func:`configure` installs them on the root logger, and :class:`ObjectLog` gives the same
reference to any logger a per-object loop runs with, so every line about an object names it.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Final

import kopf

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_format: str = "text", verbose: bool = False) -> None:
    """Log to stderr as ``text`` or ``json``; lines about an object start with ``[namespace/name]``."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    chosen: Any = kopf.LogFormat.JSON if log_format == "json" else TEXT_FORMAT
    kopf.configure(verbose=verbose, log_format=chosen, log_prefix=True)


class ObjectLog(logging.LoggerAdapter[Any]):
    """A logger whose records carry one object's reference, as Kopf's object loggers do."""

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[Any], kind: str, namespace: str, name: str
    ) -> None:
        ref = {"kind": kind, "namespace": namespace or None, "name": name}
        super().__init__(logger, {"k8s_ref": ref, "k8s_skip": True})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = dict(self.extra or {}) | dict(kwargs.get("extra") or {})
        return msg, kwargs


def names_object(logger: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Whether the logger's records carry an object reference."""
    return isinstance(logger, logging.LoggerAdapter) and "k8s_ref" in (logger.extra or {})
