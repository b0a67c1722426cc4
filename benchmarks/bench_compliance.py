"""Compliance scanning of manifest files: ``fortress scan -f`` against checkov, side by side.

Both tools scan the same generated corpora (``fortress_dev.manifests``: one manifest per file, 80 %
workloads of every kind with settings drawn so each check passes and fails somewhere, 20 % Services,
Roles, ConfigMaps and NetworkPolicies) with all their controls on, each as a fresh subprocess writing
a JSON report of its failures (checkov: ``--framework kubernetes -o json --compact --quiet``;
fortress: ``-o json``). Reported per tool: wall seconds, CPU seconds and peak RSS of the process,
objects/s and checks/s (a check = one pass or fail verdict of one control on one object, as each tool
counts them), the number of controls it has, and Fortress's speed-up: checkov's wall seconds over
Fortress's, and the same for CPU seconds (on a shared machine CPU time varies least). Target: at
least 10x.

Run: ``.venv/bin/python -m benchmarks.bench_compliance [--sizes 1000 10000]`` (needs checkov:
``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fortress.compliance.controls import CATALOGUE
from fortress_dev.manifests import corpus, write


@dataclass
class Run:
    tool: str
    objects: int
    seconds: float
    cpu: float
    rss_mb: float
    checks: int
    controls: int

    def row(self, ratio: str) -> str:
        return (
            f"| {self.objects:,} | {self.tool} | {self.seconds:.2f} | {self.cpu:.2f} | {self.rss_mb:.0f} | "
            f"{self.objects / self.seconds:,.0f} | {self.checks / self.seconds:,.0f} | {self.checks:,} | "
            f"{self.controls} | {ratio} |"
        )


def _checkov() -> str:
    beside = Path(sys.executable).with_name("checkov")
    found = str(beside) if beside.exists() else shutil.which("checkov")
    if not found:
        raise SystemExit("checkov is not installed: pip install -e '.[bench]'")
    return found


def _timed(
    command: list[str], env: dict[str, str], stdout: Any, timeout: float | None = None
) -> tuple[float, float, float, int | None]:
    """Run ``command``; (wall s, CPU s, peak RSS MB, exit code) of that process and the children it
    waited for (wait4). Past ``timeout`` the process group is killed and the exit code is None."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=stdout, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        seconds = time.perf_counter() - started
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode
        if timeout is not None and seconds > timeout:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, None
        time.sleep(0.2)


def checkov_controls() -> int:
    listing = subprocess.run(
        [_checkov(), "-l", "--framework", "kubernetes"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    return len(set(re.findall(r"CKV2?_K8S_\d+", listing.stdout)))


def run_checkov(directory: Path, count: int, controls: int, timeout: float) -> Run | None:
    out = directory.parent / "checkov.json"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    command = [
        _checkov(),
        "-d",
        str(directory),
        "--framework",
        "kubernetes",
        "-o",
        "json",
        "--compact",
        "--quiet",
        "--skip-download",
    ]
    with out.open("w") as sink:
        seconds, cpu, rss, code = _timed(command, env, sink, timeout)
    if code is None:
        return None
    if code not in (0, 1):
        raise SystemExit(f"checkov exited {code}")
    data = json.loads(out.read_text())
    summary = (data[0] if isinstance(data, list) else data)["summary"]
    return Run("checkov", count, seconds, cpu, rss, summary["passed"] + summary["failed"], controls)


def run_fortress(directory: Path, count: int) -> Run:
    out = directory.parent / "fortress.json"
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "operator"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "fortress",
        "scan",
        "-f",
        str(directory),
        "-o",
        "json",
        "--output-file",
        str(out),
    ]
    seconds, cpu, rss, code = _timed(command, env, subprocess.DEVNULL)
    if code != 0:
        raise SystemExit(f"fortress scan exited {code}")
    report = json.loads(out.read_text())
    checks = sum(c["passed"] + c["failed"] + c["suppressed"] for c in report["controls"])
    return Run("fortress", count, seconds, cpu, rss, checks, len(CATALOGUE))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 10000], help="corpus sizes (manifests)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--checkov-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="stop checkov after this long and report a lower bound",
    )
    parser.add_argument(
        "--skip-checkov-above",
        type=int,
        default=None,
        metavar="N",
        help="run only fortress on corpora larger than N",
    )
    args = parser.parse_args()
    controls = checkov_controls()
    print(
        "| Manifests | Tool | Seconds | CPU s | Peak RSS MB | Objects/s | Checks/s | Checks | Controls "
        "| Speed-up (wall; CPU) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"compliance-{size}-") as tmp:
            directory = Path(tmp) / "manifests"
            write(corpus(size, seed=args.seed), directory)
            ours = run_fortress(directory, size)
            if args.skip_checkov_above is not None and size > args.skip_checkov_above:
                print(ours.row("checkov not run"), flush=True)
                continue
            theirs = run_checkov(directory, size, controls, args.checkov_timeout)
            if theirs is None:
                limit = args.checkov_timeout
                cells = f"| {size:,} | checkov | > {limit:.0f} (stopped) | | | < {size / limit:,.1f} |"
                print(f"{cells} | | {controls} | |")
                print(ours.row(f"**> {limit / ours.seconds:.0f}x** (lower bound)"), flush=True)
                continue
            print(theirs.row(""), flush=True)
            ratio = f"**{theirs.seconds / ours.seconds:.1f}x**; {theirs.cpu / ours.cpu:.1f}x"
            print(ours.row(ratio), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
