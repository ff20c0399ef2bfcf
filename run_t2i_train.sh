#!/usr/bin/env bash
# AR-GRPO on text-to-image LlamaGen (the paper's T2I setting): GPT-XL stage-1 at 256 px, G=8, beta=1.0,
# lr 1e-5, CFG 2.0 (the paper's value per its authors; upstream's script says 4.0), 600 steps, COCO captions.
# Any flag of train_t2i.py can be appended and overrides these.
#   GPT_CKPT, VQ_CKPT   default: pretrained_models/t2i_XL_stage1_256.pt, pretrained_models/vq_ds16_t2i.pt
#   T5_PATH             flan-t5-xl folder or hub id (default: pretrained_models/t5-ckpt/flan-t5-xl)
#   DATASET             prompt file (default: dataset/coco_captions_30000.json; `python -m dataset.download_prompts coco`)
#   OUTPUT_DIR          default: outputs/t2i_XL_256_grpo. If it is not empty, append --resume_from_checkpoint
#                       latest (continue) or --overwrite_output_dir true (start over); it is refused otherwise
#   NPROC, ACCELERATE_CONFIG, PYTHON: see scripts/launch.sh
set -euo pipefail
cd "$(dirname "$0")"
source scripts/launch.sh

GPT_CKPT=${GPT_CKPT:-pretrained_models/t2i_XL_stage1_256.pt}
VQ_CKPT=${VQ_CKPT:-pretrained_models/vq_ds16_t2i.pt}
T5_PATH=${T5_PATH:-pretrained_models/t5-ckpt/flan-t5-xl}
DATASET=${DATASET:-dataset/coco_captions_30000.json}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/t2i_XL_256_grpo}
HF=https://huggingface.co/peizesun/llamagen_t2i
require_file "$GPT_CKPT" "GPT checkpoint (GPT_CKPT)" "Download it from $HF/resolve/main/t2i_XL_stage1_256.pt, or set GPT_CKPT."
require_file "$VQ_CKPT" "VQ tokenizer (VQ_CKPT)" "Download it from $HF/resolve/main/vq_ds16_t2i.pt, or set VQ_CKPT."
require_file "$DATASET" "prompt file (DATASET)" "Fetch it with 'python -m dataset.download_prompts coco', or set DATASET."
if [ ! -d "$T5_PATH" ] && [[ "$T5_PATH" == pretrained_models/* ]]; then
  echo "note: $T5_PATH not found; loading google/flan-t5-xl from the hub instead" >&2
  T5_PATH=google/flan-t5-xl
fi

launch train_t2i.py \
  --gpt_model GPT-XL --gpt_type t2i --gpt_ckpt "$GPT_CKPT" --vq_ckpt "$VQ_CKPT" \
  --image_size 256 --downsample_size 16 --cls_token_num 120 --caption_dim 2048 \
  --text_encoder "$T5_PATH" --dataset_name "$DATASET" \
  --num_generations 8 --per_device_train_batch_size 8 --gradient_accumulation_steps 1 --num_iterations 1 \
  --gen_cfg_cfg_scale 2.0 --top_k 0 --top_p 1.0 --temperature 1.0 \
  --reward_funcs clip_text clip_text_quantize hpsv2_text hpsv2_text_quantize maniqa qwenvl_3b_text qwenvl_fake \
      qwenvl_weird \
  --reward_weights 1 1 1 1 1 1 1 1 \
  --beta 1.0 --learning_rate 1e-5 --max_steps 600 --bf16 true \
  --save_steps 100 --save_total_limit 6 --report_to tensorboard \
  --output_dir "$OUTPUT_DIR" --seed 42 "$@"
