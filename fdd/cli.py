"""The ``fdd`` command: ``fdd [overrides]`` runs the method (same as ``python -m fdd.main``),
``fdd solve`` answers questions with a trained student, ``fdd report`` summarises runs and sweeps,
``fdd completion bash`` prints tab completion for the shell. ``python -m fdd`` is the same command."""

from __future__ import annotations

import os
import re
import sys
from typing import List, Optional

from fdd.runtime.cpu import prefer_passive_wait
from fdd.runtime.plugins import check_plugins

prefer_passive_wait()  # before torch is imported (fdd/runtime/cpu.py)

USAGE = """usage: fdd [group=option ...] [key=value ...] [-m]   run (or resume) FDD; Hydra overrides
       fdd solve STUDENT_DIR "question" | FILE.jsonl         answer with a trained student
       fdd report DIR                                        tables and plots of a run, a sweep or a folder of sweeps
       fdd completion bash                                   tab completion: eval "$(fdd completion bash)"

examples:
  fdd                                    the embedded default (simulator teacher, tiny student, CPU)
  fdd debug=fast                         a quick check: tiny sizes, 1 epoch, no logger
  fdd -m augmentation=fdd,none seed=0,1  a sweep in outputs/fdd/multirun/augmentation=fdd,none,seed=0,1/
  fdd -m hparams_search=optuna           an Optuna sweep maximising held-out accuracy
  fdd dry_run=true teacher=openai        teacher calls, tokens and cost before paying
  fdd solve outputs/fdd/default/final "Maya fills 4 boxes with 6 cookies in each box. How many cookies does Maya have now?"

The run's config groups and keys follow (Hydra's --help):
"""

SUBCOMMANDS = ("solve", "report", "completion")

# Hydra's own script (fdd -sc install=bash) completes `fdd ...` and `python script.py ...` only:
# for `python -m fdd.main` it looks for a file named `-m`. This one completes `fdd ...`,
# `python -m fdd ...` and `python -m fdd.main ...` from Hydra's query (-sc query=bash, which
# fdd/cli.py hands the line as `fdd ...`), and leaves other python command lines to their own
# completion. Bash splits `key=value` at `=`, so the replies are cut to the word bash completes.
BASH_COMPLETION = r"""# fdd tab completion (Hydra config groups, options and keys) for `fdd ...`, `python -m fdd ...`
# and `python -m fdd.main ...`. Install: eval "$(fdd completion bash)"  (e.g. in ~/.bashrc)
_fdd_python_completion=$(complete -p python 2>/dev/null | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
_fdd_complete() {
    local line=${COMP_LINE:0:COMP_POINT} cur=${COMP_WORDS[COMP_CWORD]} tok="" first=1 i=1 subs=1 here choices
    local -a words query
    read -r -a words <<< "$line"
    [[ $line =~ [[:space:]]$ ]] || tok=${words[${#words[@]}-1]}
    here=${#words[@]}; [[ -n $tok ]] && here=$((here - 1))  # index of the word being completed
    case ${words[0]##*/} in
        python|python3|python3.*)
            while [[ ${words[i]} == -* && ${words[i]} != -m ]]; do i=$((i + 1)); done
            if [[ ${words[i]} != -m || ! ${words[i+1]} =~ ^fdd(\.main)?$ ]]; then
                if [[ -n $_fdd_python_completion ]] && declare -F "$_fdd_python_completion" >/dev/null; then
                    "$_fdd_python_completion" "$@"
                fi
                return 0
            fi
            first=$((i + 2)); query=("${words[0]}" -m fdd); [[ ${words[i+1]} == fdd ]] || subs=0 ;;
        *) query=("${words[0]}") ;;
    esac
    ((here >= first)) || return 0
    ((subs)) && case ${words[first]} in  # fdd solve/report: files and folders (complete -o default)
        solve|report) ((here > first)) && return 0 ;;
        completion) if ((here > first)); then COMPREPLY=($(compgen -W bash -- "$tok")); return 0; fi ;;
    esac
    choices=$(COMP_LINE=$line COMP_POINT=${#line} "${query[@]}" -sc query=bash 2>/dev/null)
    ((subs && here == first)) && choices+=" solve report completion"
    COMPREPLY=($(compgen -W "$choices" -- "$tok"))
    if [[ -n $tok && $tok == *"$cur" && $tok != "$cur" ]]; then  # bash completes only the part after = or :
        local cut=${#tok}; cut=$((cut - ${#cur}))
        for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]:cut}; done
    fi
    # a finished value (not a group. or key=) gets its space
    if ((${#COMPREPLY[@]} == 1)) && [[ ! ${COMPREPLY[0]} =~ [.=/]$ ]]; then compopt +o nospace 2>/dev/null; fi
    return 0
}
complete -o nospace -o default -F _fdd_complete fdd python python3
"""

_PYTHON_M_FDD = re.compile(r"^\s*\S*python[0-9.]*\s+(?:-[^m\s]\S*\s+)*-m\s*fdd(?:\.main)?(?=\s|$)\s*(.*)$", re.S)


def completion_line(line: str) -> str:
    """The command line Hydra's completion query can parse: ``python -m fdd.main ARGS`` (and
    ``python -m fdd ARGS``) become ``fdd ARGS``; Hydra's own parser reads ``-m fdd.main`` as the
    multirun flag and an override, and fails."""
    m = _PYTHON_M_FDD.match(line)
    return f"fdd {m.group(1)}" if m else line


def completion(argv: List[str]) -> int:
    if argv[:1] != ["bash"]:
        print('usage: fdd completion bash      then: eval "$(fdd completion bash)"', file=sys.stderr)
        return 2
    print(BASH_COMPLETION, end="")
    return 0


def main(argv: Optional[List[str]] = None) -> Optional[int]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "solve":
        from fdd.solve import main as solve

        return solve(argv[1:])
    if argv and argv[0] == "report":
        from fdd.reporting.report.cli import main as report

        return report(argv[1:])
    if argv and argv[0] == "completion":
        return completion(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
    if "COMP_LINE" in os.environ and any("query=" in a for a in argv):  # Hydra's -sc query=bash
        os.environ["COMP_LINE"] = completion_line(os.environ["COMP_LINE"])
    check_plugins(argv)
    from fdd.main import main as run

    # Hydra reads its overrides from sys.argv; the configs ship inside the package (fdd/conf), so
    # the same call works from a checkout and from an installed wheel.
    sys.argv = ["fdd", *argv]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
