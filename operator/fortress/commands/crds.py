"""``fortress crds``: generate the CRDs from the models, or check them for drift."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fortress.api import crdgen
from fortress.paths import chart_crd_dir, repo_root


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("crds", help="generate crds/ (and the chart's copy) from the models")
    parser.add_argument("--out", type=Path, action="append", help="directory to write (repeatable)")
    parser.add_argument("--check", action="store_true", help="exit 1 when checked-in CRDs differ")
    parser.add_argument("--stdout", action="store_true", help="print all CRDs as one YAML stream")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.stdout:
        from fortress.api import KINDS

        sys.stdout.write("---\n".join(crdgen.render(info) for info in KINDS))
        return 0
    directories = args.out or [repo_root() / "crds", chart_crd_dir()]
    if args.check:
        problems = crdgen.drift(directories)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `fortress crds` to regenerate", file=sys.stderr)
        return 1 if problems else 0
    for path in crdgen.write(directories):
        print(path)
    return 0
