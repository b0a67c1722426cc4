"""The Dockerfile's shape: multi-stage, slim base, non-root, no compilers in the final image,
``fortress`` as entrypoint, and a .dockerignore that keeps the context to what the build copies.
(tests/integration/core/test_wheel_install.py runs its install step.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fortress.paths import repo_root

ROOT = repo_root()
TEXT = (ROOT / "Dockerfile").read_text()
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make ", "cc ", "libc6-dev", "python3-dev")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


INSTRUCTIONS = _instructions(TEXT)
ARGS = dict(arg.split("=", 1) for word, arg in INSTRUCTIONS if word == "ARG" and "=" in arg)


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for word, rest in INSTRUCTIONS:
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
    return stages


def _base(stage: list[tuple[str, str]]) -> str:
    image = stage[0][1].split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], image)


def test_multi_stage_on_slim_python() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert _base(stages[-1]) == "python:3.11-slim"
    assert all(_base(stage).startswith("python:3.11") for stage in stages)


def test_the_builder_builds_the_wheel_and_the_final_stage_only_copies_the_environment() -> None:
    builder, final = _stages()[0], _stages()[-1]
    builder_runs = " ".join(rest for word, rest in builder if word == "RUN")
    assert (
        "pip wheel --wheel-dir /wheels ." in builder_runs and "python -m venv /opt/fortress" in builder_runs
    )
    # the environment installs from those wheels only: nothing fetched or compiled after the build
    assert "--no-index --find-links /wheels --only-binary=:all:" in builder_runs
    assert not [rest for word, rest in final if word == "RUN"], "the final stage runs nothing"
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies == ["--from=builder /opt/fortress /opt/fortress"]


def test_no_compiler_is_installed_in_the_final_image() -> None:
    final = " ".join(rest for word, rest in _stages()[-1]).lower()
    assert not [c for c in COMPILERS if c in final]
    assert "apt-get" not in final


def test_runs_as_a_fixed_non_root_user_matching_the_chart() -> None:
    (user,) = [rest for word, rest in _stages()[-1] if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    values = (ROOT / "charts" / "fortress" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values


def test_fortress_is_the_entrypoint() -> None:
    (entrypoint,) = [rest for word, rest in _stages()[-1] if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["fortress"]
    (cmd,) = [rest for word, rest in _stages()[-1] if word == "CMD"]
    assert json.loads(cmd) == ["run"]


def test_dockerignore_admits_exactly_what_the_builder_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "**", "deny everything, then admit what the build needs"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for word, rest in _stages()[0]:
        if word == "COPY" and "--from" not in rest:
            copied.update(rest.split()[:-1])
    assert admitted == copied


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "operator", "migrations", "crds"])
def test_the_copied_sources_exist(path: str) -> None:
    assert (ROOT / path).exists()
    assert Path(ROOT / path).resolve().is_relative_to(ROOT)
