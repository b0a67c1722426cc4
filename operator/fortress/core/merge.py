"""JSON merge patches (RFC 7386), and the smallest patch that changes a document (pure)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def apply(document: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with ``patch`` merged in: None removes a key, objects merge, the rest replaces."""
    result: dict[str, Any] = copy.deepcopy(dict(document or {}))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = apply(current if isinstance(current, Mapping) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def changes(document: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``patch`` that changes ``document`` (empty when applying it changes nothing)."""
    document = document or {}
    result: dict[str, Any] = {}
    for key, value in patch.items():
        current = document.get(key)
        if value is None:
            if key in document:
                result[key] = None
        elif isinstance(value, Mapping) and isinstance(current, Mapping):
            nested = changes(current, value)
            if nested:
                result[key] = nested
        elif isinstance(value, Mapping):
            result[key] = _without_nulls(value)
        elif current != value or key not in document:
            result[key] = copy.deepcopy(value)
    return result


def _without_nulls(value: Mapping[str, Any]) -> dict[str, Any]:
    """A new object written whole: null members mean nothing there, so they are left out."""
    return {
        k: (_without_nulls(v) if isinstance(v, Mapping) else copy.deepcopy(v))
        for k, v in value.items()
        if v is not None
    }
