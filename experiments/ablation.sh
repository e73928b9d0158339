#!/usr/bin/env bash
# Ablation sweeps for "did the feedback help?" -- ready-to-run Hydra multirun commands.
# Every job is one run directory under outputs/ablation/multirun/<overrides>; rerunning a command
# resumes (finished stages and jobs are skipped). Summarise without wandb:
#   python -m fdd.reporting.report outputs/ablation/multirun            # table, final-round deltas, plots
# On a SLURM cluster add:  hydra/launcher=slurm  (fdd/conf/hydra/launcher/slurm.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-seed0}"
case "$what" in
  seed0)   # one seed of every variant (~3-5 min per job on a shared 2-core CPU)
    python -m fdd.main -m experiment=ablation augmentation=fdd,none,easy_only,hard_only,random seed=0 ;;
  seeds)   # three seeds (resumes the seed=0 jobs)
    # seed first: a sweep cut short still has every variant for the seeds it finished
    python -m fdd.main -m experiment=ablation seed=0,1,2 augmentation=fdd,none,random,easy_only,hard_only ;;
  rounds)  # how the gap evolves with more rounds (fdd vs its controls), task ablation_rounds
    python -m fdd.main -m experiment=ablation task_name=ablation_rounds augmentation=fdd,none,random rounds=2,3,4 seed=0,1,2 ;;
  slurm)   # the three-seed sweep as SLURM jobs, one per variant x seed
    python -m fdd.main -m hydra/launcher=slurm experiment=ablation \
      augmentation=fdd,none,easy_only,hard_only,random seed=0,1,2 ;;
  report)
    python -m fdd.reporting.report outputs/ablation/multirun ;;
  *) echo "usage: $0 [seed0|seeds|rounds|slurm|report]" >&2; exit 2 ;;
esac
