#!/usr/bin/env bash
# AR-GRPO on class-to-image LlamaGen (the paper's C2I setting): GPT-XL at 384 px, G=8, beta=0.1, lr 1e-5,
# CFG 2.0, 400 steps, upstream's eight rewards. Any flag of train_c2i.py can be appended and overrides these.
#   GPT_CKPT, VQ_CKPT   checkpoints (default: pretrained_models/c2i_XL_384.pt, pretrained_models/vq_ds16_c2i.pt)
#   OUTPUT_DIR          default: outputs/c2i_XL_384_grpo. If it is not empty, append --resume_from_checkpoint
#                       latest (continue) or --overwrite_output_dir true (start over); it is refused otherwise
#   IMAGE_ROOT          optional ImageNet train folder (only the `mse` reward needs images)
#   NPROC, ACCELERATE_CONFIG, PYTHON: see scripts/launch.sh
set -euo pipefail
cd "$(dirname "$0")"
source scripts/launch.sh

GPT_CKPT=${GPT_CKPT:-pretrained_models/c2i_XL_384.pt}
VQ_CKPT=${VQ_CKPT:-pretrained_models/vq_ds16_c2i.pt}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/c2i_XL_384_grpo}
HF=https://huggingface.co/FoundationVision/LlamaGen
require_file "$GPT_CKPT" "GPT checkpoint (GPT_CKPT)" "Download it from $HF/resolve/main/c2i_XL_384.pt, or set GPT_CKPT."
require_file "$VQ_CKPT" "VQ tokenizer (VQ_CKPT)" "Download it from $HF/resolve/main/vq_ds16_c2i.pt, or set VQ_CKPT."
extra=()
[ -n "${IMAGE_ROOT:-}" ] && extra+=(--image_root "$IMAGE_ROOT")

launch train_c2i.py \
  --gpt_model GPT-XL --gpt_type c2i --gpt_ckpt "$GPT_CKPT" --vq_ckpt "$VQ_CKPT" \
  --image_size 384 --downsample_size 16 --cls_token_num 1 \
  --num_generations 8 --per_device_train_batch_size 8 --gradient_accumulation_steps 1 --num_iterations 1 \
  --gen_cfg_cfg_scale 2.0 --top_k 0 --top_p 1.0 --temperature 1.0 \
  --reward_funcs clip_distance clip_quantize hpsv2 hpsv2_quantize maniqa qwenvl_3b qwenvl_fake qwenvl_weird \
  --reward_weights 1 1 1 1 1 1 1 1 \
  --beta 0.1 --learning_rate 1e-5 --max_steps 400 --bf16 true \
  --save_steps 100 --save_total_limit 6 --report_to tensorboard \
  --output_dir "$OUTPUT_DIR" --seed 42 "${extra[@]}" "$@"
