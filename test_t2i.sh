#!/usr/bin/env bash
# GenEval images of a text-to-image model (upstream AR-GRPO's argument order):
#
#   bash test_t2i.sh MODEL_OR_CKPT GPU STEP CFG [more flags of sampling/sample_geneval.py]
#
#   MODEL_OR_CKPT  GPT weights file, a run's output folder, or a run name: outputs/NAME (ours) or
#                  checkpoints/NAME (upstream's) (default: pretrained_models/t2i_XL_stage1_256.pt)
#   GPU            comma list of CUDA devices, one process each; 'all'; 'cpu'; empty: device 0 (the CPU, said
#                  out loud, when there is no CUDA device)
#   STEP           in an output folder: checkpoint-STEP ('latest': the newest); empty or 'final': its gpt_final.pt
#   CFG            classifier-free guidance scale (default 2.0, what upstream's script used)
#
# A run folder supplies its own model flags (saved with each checkpoint); a weights file gets LlamaGen's t2i
# GPT-XL at 256 px. Environment: GPT_MODEL, VQ_CKPT, TEXT_ENCODER (a flan-t5-xl folder, a hub id or 'tiny'),
# IMAGE_SIZE, ALLOW_CPU=1 (sample more than a few images without CUDA), GENEVAL_METADATA, N_SAMPLES, TOP_K,
# PER_PROC_BATCH_SIZE, SEED, OUT_ROOT, RUN_NAME, PYTHON. Then score OUT_ROOT/vis_out_<RUN_NAME> with GenEval's
# detector (docs/evaluation.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/sampling/launch.sh"

GENEVAL_METADATA="${GENEVAL_METADATA:-$ROOT/benchmark/geneval/prompts/evaluation_metadata.jsonl}"
t2i_run "GenEval images" sampling.sample_geneval vis_out_ \
    --metadata_file "$GENEVAL_METADATA" "GenEval metadata (GENEVAL_METADATA)" geneval "$@"
