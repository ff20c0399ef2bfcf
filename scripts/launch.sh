# Shell helpers of every launcher (run_*_train.sh here; test*.sh through sampling/launch.sh): check input
# files before any work and pick a launcher. Sourced, not executed. PYTHON picks the interpreter.

PYTHON="${PYTHON:-python}"
DEMO_HINT="       No checkpoints? 'bash run_demo.sh' runs the whole method offline on a small synthetic task."

die() {
  echo "error: $*" >&2
  exit 1
}

# One process per visible GPU (CUDA_VISIBLE_DEVICES or nvidia-smi), 1 on a CPU-only machine; NPROC overrides.
count_gpus() {
  local n=0
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    n=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c . || true)
  elif command -v nvidia-smi >/dev/null 2>&1; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c GPU || true)
  fi
  echo $(( n > 0 ? n : 1 ))
}

# require_file PATH WHAT HINT: stop before any work, naming the missing file and how to get it.
require_file() {
  [[ -f "$1" ]] || die "$2 not found: $1. $3
$DEMO_HINT"
}

# launch SCRIPT ARGS...: torchrun on one node, or `accelerate launch` with ACCELERATE_CONFIG (e.g.
# scripts/accelerate/ddp.yaml, multi-node). Shard with --fsdp; accelerate's FSDP/DeepSpeed configs are refused.
launch() {
  local nproc=${NPROC:-$(count_gpus)}
  if [ -n "${ACCELERATE_CONFIG:-}" ]; then
    exec "$PYTHON" -m accelerate.commands.launch --config_file "$ACCELERATE_CONFIG" "$@"
  fi
  exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$nproc" "$@"
}
