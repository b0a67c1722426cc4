"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

``python -m fortress crds`` writes one file per kind; ``--check`` exits non-zero when a checked-in
file differs from what the models generate (drift). The schema is *structural* (every node typed,
no ``$ref``, no ``anyOf`` of types), as ``apiextensions.k8s.io/v1`` requires.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import PydanticUndefined, core_schema

from fortress.api import CATEGORY, GROUP, KINDS, VERSION, KindInfo

_DROPPED_KEYS = {"title", "x-fortress-format"}
_KEEP_AS_IS = {"default", "enum", "example", "x-kubernetes-list-map-keys"}


class _FactoryDefaults(GenerateJsonSchema):
    """Also emit defaults produced by ``default_factory`` so the API server applies them."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            factory = schema["default_factory"]
            return factory()  # type: ignore[call-arg]
        value = schema.get("default", NoDefault)
        return NoDefault if value is PydanticUndefined else value


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn a pydantic JSON schema node into a structural OpenAPI v3 node."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        target.update(node)  # field-level description and default win over the model's
        node = target
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unions are not structural: {options}")
        merged = dict(options[0])
        if "$ref" in merged:
            merged = _structural(merged, defs)
        merged.update(node)
        node = merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        inner = _structural(inner, defs)
        inner.update(node)
        node = inner
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default":
            if value is not None:
                out[key] = _strip_none(value)
        elif key == "additionalProperties" and value is False:
            continue  # not structural; the API server prunes or rejects unknown fields itself
        elif key in _KEEP_AS_IS:
            out[key] = value
        elif key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if out.get("type") == "integer":
        out.setdefault("format", "int64")
    if out.get("type") == "number":
        out.setdefault("format", "double")
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    ordered: dict[str, Any] = {k: out[k] for k in ("description", "type", "format") if k in out}
    ordered.update((k, v) for k, v in out.items() if k not in ordered)
    return ordered


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)  # type: ignore[no-any-return]


def _json_path(model: type[BaseModel], name: str, root: str) -> str:
    """``.spec.<alias>`` of a model field; KeyError naming it when the model has no such field."""
    field = model.model_fields.get(name)
    if field is None:
        raise KeyError(f"{model.__name__} has no field {name!r} (named by KindInfo.scale)")
    return f".{root}.{field.alias or name}"


def subresources(info: KindInfo) -> dict[str, Any]:
    """``status`` always; ``scale`` when the kind declares it, its paths read from the models."""
    found: dict[str, Any] = {"status": {}}
    if info.scale is not None:
        found["scale"] = {
            "specReplicasPath": _json_path(info.spec_model, info.scale.spec_replicas, "spec"),
            "statusReplicasPath": _json_path(info.status_model, info.scale.status_replicas, "status"),
            "labelSelectorPath": _json_path(info.status_model, info.scale.label_selector, "status"),
        }
    return found


def crd_for(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = model_schema(info.spec_model)
    spec_schema["description"] = (info.spec_model.__doc__ or "").strip()
    status_schema = model_schema(info.status_model)
    status_schema["description"] = (info.status_model.__doc__ or "").strip()
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"description": c.description} if c.description else {}),
            **({"priority": c.priority} if c.priority else {}),
            **({"format": c.format} if c.format else {}),
        }
        for c in info.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/name": "fortress", "app.kubernetes.io/part-of": "fortress"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources(info),
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(info: KindInfo) -> str:
    """The YAML text of one kind's CRD, as checked in."""
    header = "# Generated by `fortress crds` from fortress.api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd_for(info), sort_keys=False, width=100, allow_unicode=True)


def file_name(info: KindInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def write(directories: Iterable[Path]) -> list[Path]:
    """Write every CRD into each directory; return the files written."""
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for info in KINDS:
            path = directory / file_name(info)
            path.write_text(render(info))
            written.append(path)
    return written


def drift(directories: Iterable[Path]) -> list[str]:
    """Describe every file that differs from the models (missing, stale or unexpected)."""
    problems = []
    for directory in directories:
        expected = {file_name(info): render(info) for info in KINDS}
        for name, text in expected.items():
            path = directory / name
            if not path.exists():
                problems.append(f"{path}: missing")
            elif path.read_text() != text:
                problems.append(f"{path}: differs from the models")
        if directory.exists():
            for path in sorted(directory.glob("*.yaml")):
                if path.name not in expected:
                    problems.append(f"{path}: not generated from any model")
    return problems
