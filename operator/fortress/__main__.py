"""``python -m fortress`` runs the ``fortress`` command."""

import sys

from fortress.cli import main

sys.exit(main())
