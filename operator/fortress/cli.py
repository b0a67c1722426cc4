"""The ``fortress`` command: run the operator, generate CRDs, migrate databases, run the demo."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fortress import __version__


def commands() -> list[str]:
    """Every module of ``fortress.commands`` is a sub-command with ``register(subparsers)``."""
    import pkgutil

    import fortress.commands

    preferred = ["run", "api", "crds", "migrate", "demo"]
    names = [m.name for m in pkgutil.iter_modules(fortress.commands.__path__)]
    return sorted(names, key=lambda n: (preferred.index(n) if n in preferred else len(preferred), n))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fortress", description=__doc__)
    root.add_argument("--version", action="version", version=f"fortress {__version__}")
    subparsers = root.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands():
        importlib.import_module(f"fortress.commands.{name}").register(subparsers)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not getattr(args, "func", None):
        parser().print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
