"""RFC 6902 JSON patches: building the smallest op that sets a path, and applying patches (pure)."""

from __future__ import annotations

import copy
from typing import Any

Op = dict[str, Any]


def pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parts(path: str) -> list[str | int]:
    """A JSON pointer's parts (list indices as ints)."""
    return [int(p) if p.isdigit() else p for p in _parts(path)]


def _parts(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]] if path else []


def set_op(obj: Any, parts: list[str | int], value: Any) -> Op:
    """One op setting ``parts`` to ``value``: replace when it exists, else add at the first missing level."""
    current = obj
    for i, key in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(current, dict) and key in current:
            if last:
                return {"op": "replace", "path": pointer(parts), "value": value}
            current = current[key]
            continue
        if isinstance(current, list) and str(key).isdigit() and int(key) < len(current):
            if last:
                return {"op": "replace", "path": pointer(parts), "value": value}
            current = current[int(key)]
            continue
        nested = value
        for inner in reversed(parts[i + 1 :]):
            nested = {str(inner): nested}
        return {"op": "add", "path": pointer(parts[: i + 1]), "value": nested}
    return {"op": "replace", "path": pointer(parts), "value": value}


def remove_op(parts: list[str | int]) -> Op:
    return {"op": "remove", "path": pointer(parts)}


class PatchError(ValueError):
    pass


def apply(obj: Any, ops: list[Op]) -> Any:
    """A copy of ``obj`` with ``ops`` (add, replace, remove) applied."""
    out = copy.deepcopy(obj)
    for op in ops:
        parts = _parts(op["path"])
        if not parts:
            raise PatchError("patching the whole document is not supported")
        parent = out
        for key in parts[:-1]:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[index]
            else:
                raise PatchError(f"unsupported op {kind}")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise PatchError(f"replace of a missing member {op['path']}")
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                if last not in parent:
                    raise PatchError(f"remove of a missing member {op['path']}")
                del parent[last]
            else:
                raise PatchError(f"unsupported op {kind}")
    return out
