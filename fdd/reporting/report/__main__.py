"""``python -m fdd.reporting.report DIR [--out OUT]``."""

from fdd.reporting.report.cli import main

raise SystemExit(main())
