"""``fortress`` sub-commands of the dev tools, registered through the ``fortress.commands`` entry points."""
