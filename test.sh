#!/usr/bin/env bash
# ImageNet FID samples of a class-conditional model, then the FID suite (upstream AR-GRPO's argument order):
#
#   bash test.sh MODEL_OR_CKPT GPU STEP CFG [more flags of sampling/sample_c2i_fid.py]
#
#   MODEL_OR_CKPT  GPT weights file, a run's output folder, or a run name: outputs/NAME (ours) or
#                  checkpoints/NAME (upstream's) (default: pretrained_models/c2i_XL_384.pt)
#   GPU            comma list of CUDA devices, one process each; 'all'; 'cpu'; empty: device 0 (the CPU, said
#                  out loud, when there is no CUDA device)
#   STEP           in an output folder: checkpoint-STEP ('latest': the newest); empty or 'final': its gpt_final.pt
#   CFG            classifier-free guidance scale (default 2.0)
#
# A run folder supplies its own model flags (saved with each checkpoint); a weights file gets LlamaGen's c2i
# GPT-XL at 384 px. Environment, overriding either: GPT_MODEL, VQ_CKPT, IMAGE_SIZE. Also IMAGE_SIZE_EVAL,
# NUM_FID_SAMPLES, PER_PROC_BATCH_SIZE, SEED, OUT_ROOT, RUN_NAME, FID_REF (a reference batch such as
# VIRTUAL_imagenet256_labeled.npz: run fid_evaluation.py on the samples), ALLOW_CPU=1 (sample more than a
# few images without CUDA), PYTHON. See docs/evaluation.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/sampling/launch.sh"

MODEL_OR_CKPT="$(resolve_model "${1:-$ROOT/pretrained_models/c2i_XL_384.pt}" "$C2I_DOWNLOAD")"
GPU="${2:-}"
STEP="${3:-}"
CFG="${4:-2.0}"
shift $(( $# < 4 ? $# : 4 ))

if [[ -f "$MODEL_OR_CKPT" ]]; then  # a LlamaGen weights file: LlamaGen's c2i settings unless set
    GPT_MODEL="${GPT_MODEL:-GPT-XL}"
    VQ_CKPT="${VQ_CKPT:-$ROOT/pretrained_models/vq_ds16_c2i.pt}"
    IMAGE_SIZE="${IMAGE_SIZE:-384}"
fi
IMAGE_SIZE_EVAL="${IMAGE_SIZE_EVAL:-256}"
NUM_FID_SAMPLES="${NUM_FID_SAMPLES:-50000}"
PER_PROC_BATCH_SIZE="${PER_PROC_BATCH_SIZE:-32}"
SEED="${SEED:-0}"
OUT_ROOT="${OUT_ROOT:-test_results}"
FID_REF="${FID_REF:-}"

[[ -z "${VQ_CKPT:-}" ]] || require_file "$VQ_CKPT" "VQ checkpoint (VQ_CKPT)" "$C2I_DOWNLOAD"
if [[ -n "$FID_REF" ]]; then
    require_file "$FID_REF" "FID reference batch (FID_REF)" \
        "Get VIRTUAL_imagenet256_labeled.npz from https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz"
fi
RUN_NAME="${RUN_NAME:-$(run_name "$MODEL_OR_CKPT" "$STEP" "$CFG")}"
SAMPLE_DIR="$OUT_ROOT/vis_out_$RUN_NAME"
pick_devices "$GPU"
model_flags

echo "FID samples of $MODEL_OR_CKPT${STEP:+ step $STEP}, cfg $CFG, $NPROC process(es) -> $SAMPLE_DIR.npz"
launch_module sampling.sample_c2i_fid \
    --gpt_ckpt "$MODEL_OR_CKPT" \
    --ckpt_step "$STEP" \
    "${MODEL_FLAGS[@]}" \
    --image_size_eval "$IMAGE_SIZE_EVAL" \
    --cfg_scale "$CFG" \
    --num_fid_samples "$NUM_FID_SAMPLES" \
    --per_proc_batch_size "$PER_PROC_BATCH_SIZE" \
    --seed "$SEED" \
    --sample_dir "$SAMPLE_DIR" \
    --npz_path "$SAMPLE_DIR.npz" \
    "$@"

if [[ -n "$FID_REF" ]]; then
    "$PYTHON" "$ROOT/fid_evaluation.py" "$FID_REF" "$SAMPLE_DIR.npz"
fi
