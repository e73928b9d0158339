"""``python -m fdd``: the ``fdd`` command (see fdd/cli.py)."""

import sys

from fdd.cli import main

sys.exit(main())
