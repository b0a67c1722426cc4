"""The ``fortress`` command: run the operator and the HTTP API, generate CRDs, migrate databases."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fortress import __version__

ENTRY_POINT_GROUP = "fortress.commands"


def commands() -> dict[str, str]:
    """Sub-command name -> module with ``register(subparsers)``.

    Every module of ``fortress.commands``, plus the modules other distributions declare in the
    ``fortress.commands`` entry-point group (e.g. ``demo`` from the dev tools).
    """
    import pkgutil
    from importlib.metadata import entry_points

    import fortress.commands

    found = {m.name: f"fortress.commands.{m.name}" for m in pkgutil.iter_modules(fortress.commands.__path__)}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.module)
    preferred = ["run", "api", "crds", "migrate", "demo"]
    names = sorted(found, key=lambda n: (preferred.index(n) if n in preferred else len(preferred), n))
    return {name: found[name] for name in names}


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``only``: register just that sub-command (a faster start for one command)."""
    root = argparse.ArgumentParser(prog="fortress", description=__doc__)
    root.add_argument("--version", action="version", version=f"fortress {__version__}")
    subparsers = root.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in commands().items():
        if only is None or name == only:
            importlib.import_module(module).register(subparsers)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    first = words[0] if words else None
    args = parser(first if first in commands() else None).parse_args(words)
    if not getattr(args, "func", None):
        parser().print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
