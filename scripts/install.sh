#!/usr/bin/env bash
# Create (or reuse) a virtualenv with the pinned dependencies and print its path.
# The venv lives outside the checkout, keyed by a hash of the requirement files, so repeat runs are instant.
#   VENV_ROOT   where venvs are kept (default: ${XDG_CACHE_HOME:-$HOME/.cache}/ar-grpo)
#   PYTHON      interpreter to build it with (default: python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
key=$(cat requirements.txt requirements-nodeps.txt scripts/fix_hpsv2_bpe.py | sha256sum | cut -c1-16)
root=${VENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/ar-grpo}
venv="$root/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  python=${PYTHON:-$(command -v python3.11 || command -v python3)}
  echo "installing dependencies into $venv (first run takes a few minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$root"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade "pip<26" >&2
  "$venv/bin/pip" install --quiet -r requirements.txt >&2
  "$venv/bin/pip" install --quiet --no-deps -r requirements-nodeps.txt >&2
  "$venv/bin/python" scripts/fix_hpsv2_bpe.py >&2
  touch "$venv/.complete"
fi
echo "$venv"
