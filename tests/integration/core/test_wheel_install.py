"""The Dockerfile's install step, without a container engine: build the wheel from the files the
builder stage copies, install it into a fresh virtual environment, run the console scripts.

Dependencies come from PyPI (binary wheels only, as in the Dockerfile), downloaded once into
``build/wheelhouse`` so that later runs install offline. Marked ``slow``: skip it with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from fortress.paths import repo_root

pytestmark = pytest.mark.slow

ROOT = repo_root()
DOCKERFILE = ROOT / "Dockerfile"
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def builder_copies() -> list[str]:
    """The sources the builder stage COPYs from the build context."""
    sources: list[str] = []
    stage = 0
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage += 1
        elif stage == 1 and words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources.extend(words[1:-1])
    return sources


def _run(argv: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    for source in builder_copies():
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin, context / source, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(origin, context / source)
    out = tmp_path_factory.mktemp("wheels")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), "."], cwd=context)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its dependencies; returns its bin/."""
    target = tmp_path_factory.mktemp("venv") / "fortress"
    venv.EnvBuilder(with_pip=False).create(target)
    pip = [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python")]
    binary = ["--quiet", "--only-binary=:all:"]
    # --no-compile: byte-compiling the kubernetes client takes most of the install time; the image
    # compiles (its root filesystem is read-only), this throw-away environment compiles on import.
    offline = [
        *pip,
        "install",
        *binary,
        "--no-compile",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        str(wheel),
    ]
    if subprocess.run(offline, capture_output=True, timeout=240).returncode != 0:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        try:
            # `pip wheel`, not `download --only-binary`: a dependency published only as an sdist
            # (`names`) is built into a wheel here, as the image's builder stage does
            _run([*pip, "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE), str(wheel)], cwd=target)
            (WHEELHOUSE / wheel.name).unlink(missing_ok=True)  # keep only the dependencies
        except AssertionError as error:
            if "NewConnectionError" in str(error) or "Could not fetch URL" in str(error):
                pytest.skip(f"PyPI is not reachable: {str(error)[-300:]}")
            raise
        _run(offline, cwd=target)
    return target / "bin"


def test_the_builder_copies_what_the_package_links_to() -> None:
    copies = set(builder_copies())
    assert {"pyproject.toml", "operator"} <= copies
    for link in ("migrations", "crds"):
        target = (ROOT / "operator" / "fortress" / link).resolve()
        assert target.relative_to(ROOT).as_posix() in copies, link


def test_the_wheel_carries_migrations_and_crds(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    sql = {Path(n).name for n in names if n.startswith("fortress/migrations/") and n.endswith(".sql")}
    crds = {Path(n).name for n in names if n.startswith("fortress/crds/") and n.endswith(".yaml")}
    assert sql == {p.name for p in (ROOT / "migrations").glob("*.sql")}
    assert crds == {p.name for p in (ROOT / "crds").glob("*.yaml")}
    assert "fortress/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]


# Development code that lives in devtools/ (fortress_dev), and module paths from before the move.
NOT_SHIPPED = (
    "fortress_dev",
    "fortress.devenv",
    "fortress.rollouts.promlab",
    "fortress.dr.localregions",
    "fortress.disaster",
    "fortress.ledger.demo",
    "fortress.sharding.demo",
    "fortress.dr.demo",
    "fortress.rollouts.demo",
)


def test_the_wheel_carries_no_dev_tools(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("fortress_dev/") or n.endswith("/demo.py")]


def test_the_dev_tools_are_not_importable_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    print(name)\n"
    )
    importable = _run([str(installed / "python"), "-c", probe, *NOT_SHIPPED], cwd=tmp_path).stdout.split()
    assert importable == []
    commands = _run([str(installed / "fortress"), "--help"], cwd=tmp_path).stdout
    assert "migrate" in commands and "demo" not in commands  # `fortress demo` comes with the dev tools


def test_the_console_scripts_run_from_a_fresh_environment(installed: Path, tmp_path: Path) -> None:
    outputs = {
        "fortress --help": _run([str(installed / "fortress"), "--help"], cwd=tmp_path).stdout,
        "fortress run --help": _run([str(installed / "fortress"), "run", "--help"], cwd=tmp_path).stdout,
        "fortress api --help": _run([str(installed / "fortress"), "api", "--help"], cwd=tmp_path).stdout,
        "kubectl-fortress --help": _run([str(installed / "kubectl-fortress"), "--help"], cwd=tmp_path).stdout,
    }
    assert "run" in outputs["fortress --help"] and "--metrics-port" in outputs["fortress run --help"]
    assert "--tokens" in outputs["fortress api --help"] and "get" in outputs["kubectl-fortress --help"]


def test_the_installed_package_finds_its_migrations_and_crds(installed: Path, tmp_path: Path) -> None:
    probe = (
        "from fortress.adapters.migrations import default_migrations_dir as d\n"
        "from pathlib import Path; import fortress\n"
        "crds = Path(fortress.__file__).parent / 'crds'\n"
        "print(len(list(d().glob('*.up.sql'))), len(list(crds.glob('*.yaml'))))"
    )
    out = _run([str(installed / "python"), "-c", probe], cwd=tmp_path).stdout.split()
    assert out == [
        str(len(list((ROOT / "migrations").glob("*.up.sql")))),
        str(len(list((ROOT / "crds").glob("*.yaml")))),
    ]
    crds = _run([str(installed / "fortress"), "crds", "--stdout"], cwd=tmp_path).stdout
    assert crds.count("kind: CustomResourceDefinition") == len(list((ROOT / "crds").glob("*.yaml")))
