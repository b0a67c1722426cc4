"""Reading Kubernetes manifests from files and directories (YAML or JSON, multi-document, ``List``s)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fortress.compliance.model import Obj, ObjectRef

SUFFIXES = (".yaml", ".yml", ".json")

try:  # the C loader is several times faster on large corpora
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object was read: file and 1-based line of its document."""

    path: str
    line: int


@dataclass
class Manifests:
    objects: list[Obj] = field(default_factory=list)
    origins: dict[ObjectRef, Origin] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    files: int = 0


def files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every manifest file under ``paths`` (directories walked recursively, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def documents(text: str) -> Iterator[tuple[int, Any]]:
    """(1-based line, document) for each YAML document of ``text``."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node.start_mark.line + 1, loader.construct_document(node)
    finally:
        loader.dispose()


def _expand(doc: Any) -> Iterator[Obj]:
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                yield from _expand(item)
        else:
            yield doc


def load(paths: Iterable[str | Path]) -> Manifests:
    """Objects of every manifest under ``paths``; unreadable files are listed in ``errors``."""
    out = Manifests()
    for path in files(paths):
        out.files += 1
        try:
            docs = list(documents(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            out.errors.append(f"{path}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
            continue
        for line, doc in docs:
            for obj in _expand(doc):
                out.objects.append(obj)
                out.origins.setdefault(ObjectRef.of(obj), Origin(str(path), line))
    return out
