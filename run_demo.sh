#!/usr/bin/env bash
# The offline demo: `bash run_demo.sh [c2i|t2i] [extra demo.run flags]` (C2I by default).
# Builds the shapes world, pretrains a small VQ + GPT (cached), evaluates, runs GRPO with the real trainer,
# evaluates again and writes summary.json, report.md, sample grids and the reward curve under outputs/demo/.
set -euo pipefail
cd "$(dirname "$0")"
task=${1:-c2i}
[ $# -gt 0 ] && shift
venv=$(bash scripts/install.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$venv/bin/python" -m demo.run --task "$task" "$@"
