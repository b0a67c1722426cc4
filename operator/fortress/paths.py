"""Where the project's files live, from a source checkout or an installed wheel."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The source checkout's root (``operator/fortress`` -> ``.``), or the working directory."""
    candidate = _PACKAGE.parent.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path(os.environ.get("FORTRESS_HOME", os.getcwd()))


def chart_crd_dir() -> Path:
    return repo_root() / "charts" / "fortress" / "crds"


def examples_dir() -> Path:
    return repo_root() / "examples"
