"""Validate a custom resource against its CRD's openAPIV3Schema the way the API server does.

OpenAPI v3 schemas are JSON Schema plus Kubernetes extensions. This adds what the API server
enforces beyond plain JSON Schema: strict field validation (unknown fields are errors, as with
``kubectl apply --validate=strict``) and list-map / set uniqueness.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fortress.paths import repo_root


def load_crds(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """CRDs by kind."""
    crds = {}
    for path in sorted((directory or repo_root() / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if (
            node.get("type") == "object"
            and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node.setdefault("additionalProperties", False)
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _list_uniqueness(schema: Any, value: Any, path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "array" and isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for index, item in enumerate(value):
                key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if key in seen:
                    yield f"{path}[{index}]: Duplicate value: {dict(zip(keys, key, strict=True))}"
                seen.add(key)
        elif kind == "set":
            for index, item in enumerate(value):
                if item in value[:index]:
                    yield f"{path}[{index}]: Duplicate value: {item!r}"
        for index, item in enumerate(value):
            yield from _list_uniqueness(schema.get("items"), item, f"{path}[{index}]")
    elif schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                yield from _list_uniqueness(sub, value[key], f"{path}.{key}" if path else key)


def schema_errors(obj: dict[str, Any], crds: dict[str, dict[str, Any]]) -> list[str]:
    """Every error of ``obj`` against its CRD, each starting with the offending field's path."""
    kind = obj.get("kind")
    if kind not in crds:
        return [f"kind: unknown kind {kind!r}"]
    crd = crds[kind]
    version = crd["spec"]["versions"][0]
    if obj.get("apiVersion") != f"{crd['spec']['group']}/{version['name']}":
        return [f"apiVersion: expected {crd['spec']['group']}/{version['name']}"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{_path(e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
    errors.extend(_list_uniqueness(schema, obj, ""))
    return errors
