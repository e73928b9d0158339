#!/usr/bin/env bash
# Ablation sweeps for "did the feedback help?" -- ready-to-run Hydra multirun commands.
# Each sweep has its own folder, outputs/<task>/multirun/<sweep>/, and each of its jobs one run
# directory in it, named by the job's overrides; rerunning a command resumes (finished stages and
# jobs are skipped). seed0, seeds and slurm share one sweep folder, outputs/ablation/multirun/variants
# (hydra.sweep.dir below), so `seeds` resumes the jobs `seed0` finished and `slurm` resumes either.
# Summarise without wandb:
#   fdd report outputs/ablation/multirun/variants        # table, final-round deltas, plots
#   fdd report outputs/ablation/multirun                 # every sweep of the task, one report each
# On a SLURM cluster add:  hydra/launcher=slurm  (fdd/conf/hydra/launcher/slurm.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

variants='hydra.sweep.dir=${paths.log_dir}/ablation/multirun/variants'  # a Hydra interpolation, not bash's
outputs="${FDD_ROOT:-.}/outputs"  # paths.log_dir
what="${1:-seed0}"
case "$what" in
  seed0)   # one seed of every variant (~3-5 min per job on a shared 2-core CPU)
    python -m fdd.main -m experiment=ablation augmentation=fdd,none,easy_only,hard_only,random seed=0 "$variants" ;;
  seeds)   # three seeds (resumes the seed=0 jobs)
    # seed first: a sweep cut short still has every variant for the seeds it finished
    python -m fdd.main -m experiment=ablation seed=0,1,2 augmentation=fdd,none,random,easy_only,hard_only "$variants" ;;
  rounds)  # how the gap evolves with more rounds (fdd vs its controls): its own sweep, named by this command,
           # in outputs/ablation_rounds/multirun/
    python -m fdd.main -m experiment=ablation task_name=ablation_rounds augmentation=fdd,none,random rounds=2,3,4 seed=0,1,2 ;;
  slurm)   # the three-seed sweep as SLURM jobs, one per variant x seed
    python -m fdd.main -m hydra/launcher=slurm experiment=ablation \
      augmentation=fdd,none,easy_only,hard_only,random seed=0,1,2 "$variants" ;;
  report)
    python -m fdd.reporting.report "$outputs/ablation/multirun/variants" ;;
  report-rounds)
    python -m fdd.reporting.report "$outputs/ablation_rounds/multirun" ;;
  *) echo "usage: $0 [seed0|seeds|rounds|slurm|report|report-rounds]" >&2; exit 2 ;;
esac
