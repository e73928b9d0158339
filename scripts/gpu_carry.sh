#!/usr/bin/env bash
# Build the carry folder of the GPU device check (experiments/gpu_check.py; benchmarks/README.md
# "GPU device check"): what the lent machine lacks and fdd needs with logger=none, teacher=oracle,
# dataset=synthetic, in a folder that `run` takes with carry [".gpu_carry"] (.gitignore'd):
#
#   wheels/   pure-Python wheels at .venv's versions, fetched with --no-deps (the machine has no
#             network): hydra-core, omegaconf and the antlr4 runtime they pin (4.9.3, only an
#             sdist on PyPI: built into a wheel here), math-verify and latex2sympy2_extended (the
#             symbolic answer fallback; fdd reads answers without it, but not identically).
#             Not carried: wandb (not imported with logger=none), datasets (only the Hub loaders
#             and final/, which experiment=gpu_check turns off), openai, gguf, vllm.
#   t5like/   the offline T5-like SentencePiece tokenizer (tests/t5like.py), built once here.
#
# fdd itself is not carried: the tree travels, and the script imports it from there.
# Prints the folder's size with the tree's; fails when either reaches the 64 MiB that travel.
#
#   bash scripts/gpu_carry.sh [DEST]        # DEST defaults to .gpu_carry
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-${GPU_CARRY_DIR:-$ROOT/.gpu_carry}}
PY=${PYTHON:-$ROOT/.venv/bin/python}
PACKAGES=(hydra-core omegaconf antlr4-python3-runtime math-verify latex2sympy2_extended)

version() {
  "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"
}

mkdir -p "$DEST"
rm -rf "$DEST/wheels" "$DEST/wheels.tmp"
mkdir -p "$DEST/wheels.tmp"
for pkg in "${PACKAGES[@]}"; do
  v=$(version "$pkg") || { echo "gpu_carry: $pkg is not installed in $PY's environment" >&2; exit 1; }
  echo "gpu_carry: $pkg==$v"
  # pip wheel: downloads the wheel where PyPI has one, else builds it from the sdist
  "$PY" -m pip wheel -q --no-deps --no-cache-dir -w "$DEST/wheels.tmp" "$pkg==$v"
done
for whl in "$DEST"/wheels.tmp/*.whl; do
  case "$whl" in
    *-none-any.whl) ;;
    *) echo "gpu_carry: $(basename "$whl") is not pure Python (the machine runs Python 3.12 on x86-64)" >&2; exit 1 ;;
  esac
done
mv "$DEST/wheels.tmp" "$DEST/wheels"
ls -l "$DEST/wheels"

"$PY" "$ROOT/experiments/gpu_check.py" --build-tokenizer "$DEST/t5like" >/dev/null
echo "gpu_carry: tokenizer in $DEST/t5like"

# size check: the carry folder alone, and with the tree that travels beside it
"$PY" "$ROOT/experiments/gpu_check.py" --check-carry "$DEST"
