#!/usr/bin/env bash
# AR-GRPO on class-to-image LlamaGen (the paper's C2I setting: GPT-XL at 384 px, G=8, beta=0.1, lr 1e-5, CFG 2.0,
# 400 steps, upstream's eight rewards). The settings are a recipe file, scripts/recipes/c2i_<RECIPE>.yaml:
#   RECIPE              recommended (default: on-policy `cfg` log-probs) or paper (upstream's exact settings,
#                       `cond` log-probs); or a path to your own .yaml. docs/recipes.md: the differences and why
# Any flag of train_c2i.py can be appended and overrides the recipe.
#   GPT_CKPT, VQ_CKPT   checkpoints (default: pretrained_models/c2i_XL_384.pt, pretrained_models/vq_ds16_c2i.pt)
#   OUTPUT_DIR          default: outputs/c2i_XL_384_grpo (recommended), outputs/c2i_XL_384_paper (paper). If it
#                       is not empty, append --resume_from_checkpoint latest (continue) or --overwrite_output_dir
#                       true (start over); it is refused otherwise
#   IMAGE_ROOT          optional ImageNet train folder (only the `mse` reward needs images)
#   NPROC, ACCELERATE_CONFIG, PYTHON: see scripts/launch.sh (the paper ran 4 processes)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/launch.sh

RECIPE=${RECIPE:-recommended}
case "$RECIPE" in
  recommended) RECIPE_FILE=scripts/recipes/c2i_recommended.yaml; RUN=grpo ;;
  paper) RECIPE_FILE=scripts/recipes/c2i_paper.yaml; RUN=paper ;;
  *) RECIPE_FILE=$RECIPE; RUN=grpo ;;
esac
require_file "$RECIPE_FILE" "recipe (RECIPE)" "Use RECIPE=recommended, RECIPE=paper or the path of a .yaml file."
GPT_CKPT=${GPT_CKPT:-pretrained_models/c2i_XL_384.pt}
VQ_CKPT=${VQ_CKPT:-pretrained_models/vq_ds16_c2i.pt}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/c2i_XL_384_$RUN}
HF=https://huggingface.co/FoundationVision/LlamaGen
require_file "$GPT_CKPT" "GPT checkpoint (GPT_CKPT)" "Download it from $HF/resolve/main/c2i_XL_384.pt, or set GPT_CKPT."
require_file "$VQ_CKPT" "VQ tokenizer (VQ_CKPT)" "Download it from $HF/resolve/main/vq_ds16_c2i.pt, or set VQ_CKPT."
extra=()
[ -n "${IMAGE_ROOT:-}" ] && extra+=(--image_root "$IMAGE_ROOT")

launch train_c2i.py --config "$(cd "$(dirname "$RECIPE_FILE")" && pwd)/$(basename "$RECIPE_FILE")" \
  --gpt_ckpt "$GPT_CKPT" --vq_ckpt "$VQ_CKPT" --output_dir "$OUTPUT_DIR" "${extra[@]}" "$@"
