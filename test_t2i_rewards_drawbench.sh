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

DRAWBENCH="${DRAWBENCH:-$ROOT/benchmark/drawbench/drawbench_test_1000.json}"
t2i_run "DrawBench rewards" sampling.drawbench_rewards vis_out_drawbench_ \
    --prompts "$DRAWBENCH" "DrawBench prompts (DRAWBENCH)" drawbench "$@"
