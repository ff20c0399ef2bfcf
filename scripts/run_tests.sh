#!/usr/bin/env bash
# Install (or reuse) the pinned environment, lint, and run the test suite offline on CPU.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh tests/test_sampling.py -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(bash scripts/install.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest "$@"
