"""The ``fdd`` command: ``fdd [overrides]`` runs the method (same as ``python -m fdd.main``),
``fdd solve`` answers questions with a trained student, ``fdd report`` summarises runs.
``python -m fdd`` is the same command."""

from __future__ import annotations

import sys
from typing import List, Optional

from fdd.runtime.plugins import check_plugins

USAGE = """usage: fdd [group=option ...] [key=value ...] [-m]   run (or resume) FDD; Hydra overrides
       fdd solve STUDENT_DIR "question" | FILE.jsonl         answer with a trained student
       fdd report DIR                                        tables and plots of a run or a multirun

examples:
  fdd                                    the embedded default (simulator teacher, tiny student, CPU)
  fdd debug=fast                         a quick check: tiny sizes, 1 epoch, no logger
  fdd -m hparams_search=optuna           an Optuna sweep maximising held-out accuracy
  fdd dry_run=true teacher=openai        teacher calls, tokens and cost before paying
  fdd solve outputs/fdd/default/final "Tom has 3 boxes of 12 apples. How many apples?"

The run's config groups and keys follow (Hydra's --help):
"""


def main(argv: Optional[List[str]] = None) -> Optional[int]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "solve":
        from fdd.solve import main as solve

        return solve(argv[1:])
    if argv and argv[0] == "report":
        from fdd.reporting.report import main as report

        return report(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
    check_plugins(argv)
    from fdd.main import main as run

    # Hydra reads its overrides from sys.argv; the configs ship inside the package (fdd/conf), so
    # the same call works from a checkout and from an installed wheel.
    sys.argv = ["fdd", *argv]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
