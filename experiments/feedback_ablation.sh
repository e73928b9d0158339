#!/usr/bin/env bash
# Does the feedback help? (issue 14) One command runs the whole matrix and prints the report:
#   worlds {balanced, imbalanced} x feedback {trained (the paper), probe (held-out slice)}
#   x augmentation {fdd, random, none, hard_only, easy_only} x seeds 0-4
# at equal training steps and an equal cap on expanded problems (fdd/conf/experiment/feedback_ablation.yaml).
# Rerunning resumes: finished stages and jobs are skipped. JOBS=2 runs the two worlds side by side.
#   bash experiments/feedback_ablation.sh            # run (or resume) and report
#   bash experiments/feedback_ablation.sh report     # report only
set -euo pipefail
cd "$(dirname "$0")/.."
out=outputs/feedback_ablation
seeds="${SEEDS:-0,1,2,3,4}"
signals="${FEEDBACK:-trained,probe}"  # e.g. FEEDBACK=probe for one signal
run_world() {  # $1 = dataset config, $2 = sweep folder
  # seeds vary slowest, so a sweep cut short still has every variant for the seeds it finished
  python -m fdd.main -m experiment=feedback_ablation "seed=$seeds" "dataset=$1" "feedback=$signals" \
    augmentation=fdd,random,none,hard_only,easy_only "hydra.sweep.dir=$out/$2" \
    $( [ "$1" = synthetic_imbalanced ] && echo 'dataset.eval.rare.n=60' )
}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # tiny models: one thread per job is fastest on a small CPU
mkdir -p "$out"
if [ "${1:-run}" != report ]; then
  if [ "${JOBS:-1}" -gt 1 ]; then
    run_world synthetic balanced > "$out.balanced.log" 2>&1 &
    pid=$!
    run_world synthetic_imbalanced imbalanced > "$out.imbalanced.log" 2>&1
    wait "$pid"
  else
    run_world synthetic balanced
    run_world synthetic_imbalanced imbalanced
  fi
fi
for world in balanced imbalanced; do
  echo "## world: $world"
  python -m fdd.reporting.report "$out/$world" --out "$out/$world/report" | sed -n '/^held-out accuracy/,/^written to/p'
done
