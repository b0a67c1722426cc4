"""Who may import whom: the shipped package never needs the dev tools, subsystems never the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import fortress

PACKAGE = Path(fortress.__file__).resolve().parent


def imports(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in paths
        for name in sorted(imports(path))
        if name in forbidden or name.startswith(tuple(f"{f}." for f in forbidden))
    ]


def test_the_package_never_imports_the_dev_tools() -> None:
    assert offenders(sorted(PACKAGE.rglob("*.py")), ("fortress_dev",)) == []
