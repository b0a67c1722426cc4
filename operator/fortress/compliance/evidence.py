"""Evidence: what was observed, redacted (Secret values never kept, only key names), and its SHA-256
over canonical JSON (keys sorted, no whitespace, UTF-8)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fortress.compliance.model import Obj

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def redact(obj: Obj) -> Obj:
    """The object as evidence keeps it: no managedFields; a Secret's data and stringData become their
    sorted key names, and its last-applied annotation (which carries the values) is dropped."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    out: dict[str, Any] = {**obj, "metadata": meta}
    if obj.get("kind") == "Secret":
        keys = sorted({str(k) for field in ("data", "stringData") for k in (obj.get(field) or {})})
        out.pop("data", None)
        out.pop("stringData", None)
        out["dataKeys"] = keys
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
    return out


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, compact separators, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digest(obj: Obj) -> str:
    """SHA-256 (hex) of the canonical JSON of the redacted object."""
    return hashlib.sha256(canonical(redact(obj))).hexdigest()
