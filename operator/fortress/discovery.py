"""Finding the subsystems' pieces by convention, so adding a subsystem touches no shared file.

A subsystem is a subpackage of ``fortress`` (e.g. ``fortress.ledger``). Its optional modules:
``handlers`` (``KIND`` and ``reconcile``, or ``RECONCILERS``; optional ``register``) for the
operator, ``api`` (``ROUTES``, ``setup``) for the HTTP API, and ``rbac`` (``RULES``) for the chart's
permissions. Its demo step lives with the dev tools (``fortress_dev.demo.<subsystem>``).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType

import fortress

# Order in which subsystems run their demo steps and list their routes (others follow by name).
PREFERRED_ORDER = ("ledger", "sharding", "dr", "rollouts", "compliance", "synthetic")
NOT_SUBSYSTEMS = {"api", "core", "adapters", "commands", "http", "metrics"}


def subsystems() -> list[str]:
    names = [
        m.name for m in pkgutil.iter_modules(fortress.__path__) if m.ispkg and m.name not in NOT_SUBSYSTEMS
    ]
    ranked = {name: index for index, name in enumerate(PREFERRED_ORDER)}
    return sorted(names, key=lambda name: (ranked.get(name, len(ranked)), name))


def modules(role: str) -> list[ModuleType]:
    """Each subsystem's ``role`` module (handlers, api or rbac), where it has one."""
    found = []
    for name in subsystems():
        qualified = f"fortress.{name}.{role}"
        if importlib.util.find_spec(qualified) is not None:
            found.append(importlib.import_module(qualified))
    return found
