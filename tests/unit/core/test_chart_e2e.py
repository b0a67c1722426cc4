"""``scripts/e2e-kind.sh`` (``make e2e-kind``) skips cleanly, saying why, without docker or kind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fortress.paths import repo_root

SCRIPT = repo_root() / "scripts" / "e2e-kind.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _run(path_dir: Path) -> subprocess.CompletedProcess[str]:
    for tool in ("dirname",):  # what the script needs before its checks
        os.symlink(shutil.which(tool) or f"/usr/bin/{tool}", path_dir / tool)
    env = {"PATH": str(path_dir), "HOME": str(path_dir)}
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_the_script_parses() -> None:
    assert subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize(
    ("stubs", "reason"),
    [
        ({}, "docker is not installed"),
        ({"docker": "exit 0"}, "kind is not installed"),
        ({"docker": 'case "$1" in info) exit 1;; esac', "kind": "exit 0"}, "Docker daemon is not running"),
    ],
    ids=["no-docker", "no-kind", "no-daemon"],
)
def test_skips_with_the_reason(tmp_path: Path, stubs: dict[str, str], reason: str) -> None:
    for name, body in stubs.items():
        _stub(tmp_path, name, body)
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("e2e-kind: SKIPPED:") and reason in result.stdout
    assert not list(tmp_path.glob("kind-*")), "nothing is created when skipping"
