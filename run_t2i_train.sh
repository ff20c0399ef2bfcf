#!/usr/bin/env bash
# AR-GRPO on text-to-image LlamaGen (the paper's T2I setting: GPT-XL stage-1 at 256 px, G=8, beta=1.0, lr 1e-5,
# 600 steps, COCO captions). The settings are a recipe file, scripts/recipes/t2i_<RECIPE>.yaml:
#   RECIPE              recommended (default: on-policy `cfg` log-probs, CFG 2.0) or paper (upstream's exact
#                       settings: `cond` log-probs, CFG 4.0); or a path to your own .yaml. docs/recipes.md: the
#                       differences and why
# Any flag of train_t2i.py can be appended and overrides the recipe.
#   GPT_CKPT, VQ_CKPT   default: pretrained_models/t2i_XL_stage1_256.pt, pretrained_models/vq_ds16_t2i.pt
#   T5_PATH             flan-t5-xl folder or hub id (default: pretrained_models/t5-ckpt/flan-t5-xl)
#   DATASET             prompt file (default: dataset/coco_captions_30000.json from `python -m dataset.download_prompts
#                       coco`; with RECIPE=paper upstream's file, dataset/coco_captions_30000_upstream.json from
#                       `... coco_upstream`)
#   OUTPUT_DIR          default: outputs/t2i_XL_256_grpo (recommended), outputs/t2i_XL_256_paper (paper). If it
#                       is not empty, append --resume_from_checkpoint latest (continue) or --overwrite_output_dir
#                       true (start over); it is refused otherwise
#   NPROC, ACCELERATE_CONFIG, PYTHON: see scripts/launch.sh (the paper ran 4 processes)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/launch.sh

RECIPE=${RECIPE:-recommended}
case "$RECIPE" in
  recommended) RECIPE_FILE=scripts/recipes/t2i_recommended.yaml; RUN=grpo; COCO=coco ;;
  paper) RECIPE_FILE=scripts/recipes/t2i_paper.yaml; RUN=paper; COCO=coco_upstream ;;
  *) RECIPE_FILE=$RECIPE; RUN=grpo; COCO=coco ;;
esac
require_file "$RECIPE_FILE" "recipe (RECIPE)" "Use RECIPE=recommended, RECIPE=paper or the path of a .yaml file."
GPT_CKPT=${GPT_CKPT:-pretrained_models/t2i_XL_stage1_256.pt}
VQ_CKPT=${VQ_CKPT:-pretrained_models/vq_ds16_t2i.pt}
T5_PATH=${T5_PATH:-pretrained_models/t5-ckpt/flan-t5-xl}
COCO_FILE=dataset/coco_captions_30000.json
[ "$COCO" = coco_upstream ] && COCO_FILE=dataset/coco_captions_30000_upstream.json
DATASET=${DATASET:-$COCO_FILE}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/t2i_XL_256_$RUN}
HF=https://huggingface.co/peizesun/llamagen_t2i
require_file "$GPT_CKPT" "GPT checkpoint (GPT_CKPT)" "Download it from $HF/resolve/main/t2i_XL_stage1_256.pt, or set GPT_CKPT."
require_file "$VQ_CKPT" "VQ tokenizer (VQ_CKPT)" "Download it from $HF/resolve/main/vq_ds16_t2i.pt, or set VQ_CKPT."
require_file "$DATASET" "prompt file (DATASET)" "Fetch it with 'python -m dataset.download_prompts $COCO', or set DATASET."
if [ ! -d "$T5_PATH" ] && [[ "$T5_PATH" == pretrained_models/* ]]; then
  echo "note: $T5_PATH not found; loading google/flan-t5-xl from the hub instead" >&2
  T5_PATH=google/flan-t5-xl
fi

launch train_t2i.py --config "$(cd "$(dirname "$RECIPE_FILE")" && pwd)/$(basename "$RECIPE_FILE")" \
  --gpt_ckpt "$GPT_CKPT" --vq_ckpt "$VQ_CKPT" --text_encoder "$T5_PATH" --dataset_name "$DATASET" \
  --output_dir "$OUTPUT_DIR" "$@"
