#!/usr/bin/env bash
# DrawBench reward metrics of a text-to-image model (upstream AR-GRPO's argument order):
#
#   bash test_t2i_rewards_drawbench.sh MODEL_OR_CKPT GPU STEP CFG [more flags of sampling/drawbench_rewards.py]
#
#   MODEL_OR_CKPT  GPT weights file, a run's output folder, or a run name: outputs/NAME (ours) or
#                  checkpoints/NAME (upstream's) (default: pretrained_models/t2i_XL_stage1_256.pt)
#   GPU            comma list of CUDA devices, one process each; 'all'; 'cpu'; empty: device 0 (the CPU, said
#                  out loud, when there is no CUDA device)
#   STEP           in an output folder: checkpoint-STEP ('latest': the newest); empty or 'final': its gpt_final.pt
#   CFG            classifier-free guidance scale (default 2.0, what upstream's script used)
#
# Metrics: CLIP score, HPSv2.1, ImageReward, PickScore, aesthetic; DeQA / UnifiedReward too when DEQA_URL /
# UNIFIEDREWARD_URL is set. Pass --reward_funcs to choose others. A run folder supplies its own model flags
# (saved with each checkpoint); a weights file gets LlamaGen's t2i GPT-XL at 256 px. Environment: GPT_MODEL,
# VQ_CKPT, TEXT_ENCODER, IMAGE_SIZE, ALLOW_CPU=1 (sample more than a few images without CUDA), DRAWBENCH
# (sheet CSV or upstream's drawbench_test_1000.json), N_SAMPLES, TOP_K,
# PER_PROC_BATCH_SIZE, SEED, OUT_ROOT, RUN_NAME, PYTHON. See docs/evaluation.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/sampling/launch.sh"

DRAWBENCH="${DRAWBENCH:-$ROOT/benchmark/drawbench/drawbench_test_1000.json}"
t2i_run "DrawBench rewards" sampling.drawbench_rewards vis_out_drawbench_ \
    --prompts "$DRAWBENCH" "DrawBench prompts (DRAWBENCH)" drawbench "$@"
