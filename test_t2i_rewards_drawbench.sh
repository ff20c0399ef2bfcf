#!/usr/bin/env bash
# DrawBench reward metrics of a text-to-image model (upstream AR-GRPO's argument order):
#
#   bash test_t2i_rewards_drawbench.sh MODEL_OR_CKPT GPU STEP CFG [more flags of sampling/drawbench_rewards.py]
#
#   MODEL_OR_CKPT  GPT weights file, or an AR-GRPO output folder (default: pretrained_models/t2i_XL_stage1_256.pt)
#   GPU            comma list of CUDA devices, one process each; 'all'; empty or 'cpu': one CPU process
#   STEP           in an output folder: checkpoint-STEP ('latest': the newest); empty: its gpt_final.pt
#   CFG            classifier-free guidance scale (default 2.0, what upstream's script used)
#
# Metrics: CLIP score, HPSv2.1, ImageReward, PickScore, aesthetic; DeQA / UnifiedReward too when DEQA_URL /
# UNIFIEDREWARD_URL is set. Pass --reward_funcs to choose others. Environment: GPT_MODEL, VQ_CKPT, TEXT_ENCODER,
# IMAGE_SIZE, DRAWBENCH (sheet CSV or upstream's drawbench_test_1000.json), N_SAMPLES, TOP_K,
# PER_PROC_BATCH_SIZE, SEED, OUT_ROOT, RUN_NAME, PYTHON. See docs/evaluation.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/sampling/launch.sh"

MODEL_OR_CKPT="${1:-$ROOT/pretrained_models/t2i_XL_stage1_256.pt}"
GPU="${2:-}"
STEP="${3:-}"
CFG="${4:-2.0}"
shift $(( $# < 4 ? $# : 4 ))

GPT_MODEL="${GPT_MODEL:-GPT-XL}"
VQ_CKPT="${VQ_CKPT:-$ROOT/pretrained_models/vq_ds16_t2i.pt}"
TEXT_ENCODER="${TEXT_ENCODER:-$ROOT/pretrained_models/t5-ckpt/flan-t5-xl}"
IMAGE_SIZE="${IMAGE_SIZE:-256}"
DRAWBENCH="${DRAWBENCH:-$ROOT/benchmark/drawbench/drawbench.csv}"
N_SAMPLES="${N_SAMPLES:-4}"
TOP_K="${TOP_K:-2000}"
PER_PROC_BATCH_SIZE="${PER_PROC_BATCH_SIZE:-16}"
SEED="${SEED:-0}"
OUT_ROOT="${OUT_ROOT:-test_results}"

ar_grpo_require_model "$MODEL_OR_CKPT" "$T2I_DOWNLOAD"
ar_grpo_require_file "$VQ_CKPT" "VQ checkpoint (VQ_CKPT)" "$T2I_DOWNLOAD"
ar_grpo_require_text_encoder "$TEXT_ENCODER"
ar_grpo_require_file "$DRAWBENCH" "DrawBench prompts (DRAWBENCH)" \
    "Fetch them with: python -m dataset.download_prompts drawbench"
RUN_NAME="${RUN_NAME:-$(ar_grpo_run_name "$MODEL_OR_CKPT" "$STEP" "$CFG")}"
OUTDIR="$OUT_ROOT/vis_out_drawbench_$RUN_NAME"
ar_grpo_devices "$GPU"

echo "DrawBench rewards of $MODEL_OR_CKPT${STEP:+ step $STEP}, cfg $CFG, $NPROC process(es) -> $OUTDIR"
ar_grpo_launch sampling.drawbench_rewards \
    --gpt_ckpt "$MODEL_OR_CKPT" \
    --ckpt_step "$STEP" \
    --gpt_model "$GPT_MODEL" \
    --vq_ckpt "$VQ_CKPT" \
    --text_encoder "$TEXT_ENCODER" \
    --image_size "$IMAGE_SIZE" \
    --cfg_scale "$CFG" \
    --top_k "$TOP_K" \
    --prompts "$DRAWBENCH" \
    --n_samples "$N_SAMPLES" \
    --per_proc_batch_size "$PER_PROC_BATCH_SIZE" \
    --seed "$SEED" \
    --outdir "$OUTDIR" \
    "$@"
