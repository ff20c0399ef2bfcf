# Shared by run_c2i_train.sh / run_t2i_train.sh: pick a launcher and check input files early.
# Sourced, not executed.

# One process per visible GPU (CUDA_VISIBLE_DEVICES or nvidia-smi), 1 on a CPU-only machine; NPROC overrides.
count_gpus() {
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c GPU || echo 1
  else
    echo 1
  fi
}

# require_file PATH WHAT WHERE: stop with a message naming the file and where to get it.
require_file() {
  if [ ! -f "$1" ]; then
    echo "error: $2 not found at '$1'." >&2
    echo "       Download it from $3, or set the environment variable shown in the script header." >&2
    echo "       No checkpoints? 'bash run_demo.sh' runs the whole method offline on a small synthetic task." >&2
    exit 1
  fi
}

# launch SCRIPT ARGS...: torchrun on one node, or `accelerate launch` with ACCELERATE_CONFIG (FSDP, DeepSpeed,
# multi-node). PYTHON picks the interpreter.
launch() {
  local python=${PYTHON:-python}
  local nproc=${NPROC:-$(count_gpus)}
  if [ -n "${ACCELERATE_CONFIG:-}" ]; then
    exec "$python" -m accelerate.commands.launch --config_file "$ACCELERATE_CONFIG" "$@"
  fi
  exec "$python" -m torch.distributed.run --standalone --nproc_per_node "$nproc" "$@"
}
