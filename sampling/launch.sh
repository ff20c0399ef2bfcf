# Shell helpers of test.sh, test_t2i.sh and test_t2i_rewards_drawbench.sh (sourced, not run), on top of the
# shared ones in scripts/launch.sh. Expects ROOT (the repository) to be set; exports PYTHONPATH.

source "$ROOT/scripts/launch.sh"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

C2I_DOWNLOAD="Download it from https://huggingface.co/FoundationVision/LlamaGen (c2i_*.pt, vq_ds16_c2i.pt) into pretrained_models/, or set the path."
T2I_DOWNLOAD="Download it from https://huggingface.co/peizesun/llamagen_t2i (t2i_XL_stage1_256.pt, vq_ds16_t2i.pt) into pretrained_models/, or set the path."

# require_model MODEL_OR_CKPT HINT: a weights file or an AR-GRPO output folder.
require_model() {
    [[ -e "$1" ]] || die "MODEL_OR_CKPT not found: $1 (a GPT weights file or an AR-GRPO output folder). $2
$DEMO_HINT"
}

# resolve_model MODEL HINT: print the path MODEL names. A path as given; else a run name, as upstream's
# `bash test.sh EXP_NAME ...`: outputs/NAME (ours) or checkpoints/NAME (upstream's), under the current
# folder, then under the repository.
resolve_model() {
    local model="$1" base
    if [[ -e "$model" || "$model" == */* ]]; then
        require_model "$model" "$2"
        echo "$model"
        return
    fi
    for base in "$PWD/outputs" "$PWD/checkpoints" "$ROOT/outputs" "$ROOT/checkpoints"; do
        if [[ -d "$base/$model" ]]; then
            echo "$base/$model"
            return
        fi
    done
    die "MODEL_OR_CKPT '$model' is neither a file or folder nor a run name under outputs/ or checkpoints/" \
        "(looked in $PWD and $ROOT). $2
$DEMO_HINT"
}

# model_flags: MODEL_FLAGS, the model flags set in the environment. A run folder's own saved settings (our
# trainer state, upstream's config.json) supply the rest, so only what is set here is passed.
model_flags() {
    MODEL_FLAGS=()
    [[ -z "${GPT_MODEL:-}" ]] || MODEL_FLAGS+=(--gpt_model "$GPT_MODEL")
    [[ -z "${VQ_CKPT:-}" ]] || MODEL_FLAGS+=(--vq_ckpt "$VQ_CKPT")
    [[ -z "${IMAGE_SIZE:-}" ]] || MODEL_FLAGS+=(--image_size "$IMAGE_SIZE")
    [[ -z "${TEXT_ENCODER:-}" ]] || MODEL_FLAGS+=(--text_encoder "$TEXT_ENCODER")
    [[ "${ALLOW_CPU:-0}" != 1 ]] || MODEL_FLAGS+=(--allow_cpu)
}

# require_text_encoder VALUE: 'tiny', a hub id, or a local T5 folder that must exist.
require_text_encoder() {
    case "$1" in
        tiny) ;;
        /* | .* | "~"*)
            [[ -d "$1" ]] || die "T5 text encoder folder (TEXT_ENCODER) not found: $1. Download" \
                "https://huggingface.co/google/flan-t5-xl into pretrained_models/t5-ckpt/flan-t5-xl (LlamaGen's" \
                "layout), or set TEXT_ENCODER to a folder or hub id."
            ;;
    esac
}

# run_name MODEL_OR_CKPT STEP CFG: upstream's <name>_<step>_<cfg>, the weights file's stem for a file.
run_name() {
    local path="${1%/}" name
    name="$(basename "$path")"
    if [[ -f "$path" ]]; then
        echo "${name%.*}${2:+_$2}_$3"
    else
        echo "${name}_${2:-final}_$3"
    fi
}

# cuda_devices: how many CUDA devices this machine shows (0 without a driver).
cuda_devices() {
    if [[ "${CUDA_VISIBLE_DEVICES-unset}" == "" ]] || ! command -v nvidia-smi >/dev/null 2>&1; then
        echo 0
    else
        nvidia-smi -L 2>/dev/null | grep -c GPU || true
    fi
}

# pick_devices GPU: export CUDA_VISIBLE_DEVICES and set NPROC, one process per listed device. An empty GPU is
# device 0 when there is one (upstream's default); without CUDA the run goes to the CPU, said out loud, and
# the sampling script refuses a large CPU run unless ALLOW_CPU=1.
pick_devices() {
    local gpu="$1" ids
    if [[ -z "$gpu" ]]; then
        if (( $(cuda_devices) > 0 )); then
            gpu=0
        else
            echo "GPU not given and no CUDA device found: sampling on the CPU (ALLOW_CPU=1 for more than" \
                "a few images)" >&2
            gpu=cpu
        fi
    fi
    case "$gpu" in
        cpu | CPU)
            export CUDA_VISIBLE_DEVICES=""
            NPROC=1
            ;;
        all)
            NPROC="$(count_gpus)"
            ;;
        *)
            [[ "$gpu" =~ ^[0-9]+(,[0-9]+)*$ ]] ||
                die "GPU must be a comma list of device ids (e.g. 0,1), 'all' or 'cpu'; got '$gpu'"
            export CUDA_VISIBLE_DEVICES="$gpu"
            IFS=, read -ra ids <<< "$gpu"
            NPROC="${#ids[@]}"
            ;;
    esac
}

# launch_module MODULE ARGS...: one process per device through torchrun, or one plain process.
launch_module() {
    local module="$1"
    shift
    if (( NPROC > 1 )); then
        "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m "$module" "$@"
    else
        "$PYTHON" -m "$module" "$@"
    fi
}

# t2i_setup MODEL_OR_CKPT GPU STEP CFG: what test_t2i.sh and test_t2i_rewards_drawbench.sh share.
# Sets the four positional values and the environment defaults, checks the model, VQ and text encoder, and
# picks the devices. A weights file gets LlamaGen's t2i GPT-XL at 256 px unless set; a run folder its saved
# settings. The caller then shifts its four positional arguments.
t2i_setup() {
    MODEL_OR_CKPT="$(resolve_model "${1:-$ROOT/pretrained_models/t2i_XL_stage1_256.pt}" "$T2I_DOWNLOAD")"
    GPU="${2:-}"
    STEP="${3:-}"
    CFG="${4:-2.0}"
    if [[ -f "$MODEL_OR_CKPT" ]]; then
        GPT_MODEL="${GPT_MODEL:-GPT-XL}"
        VQ_CKPT="${VQ_CKPT:-$ROOT/pretrained_models/vq_ds16_t2i.pt}"
        TEXT_ENCODER="${TEXT_ENCODER:-$ROOT/pretrained_models/t5-ckpt/flan-t5-xl}"
        IMAGE_SIZE="${IMAGE_SIZE:-256}"
    fi
    N_SAMPLES="${N_SAMPLES:-4}"
    TOP_K="${TOP_K:-2000}"
    PER_PROC_BATCH_SIZE="${PER_PROC_BATCH_SIZE:-16}"
    SEED="${SEED:-0}"
    OUT_ROOT="${OUT_ROOT:-test_results}"
    [[ -z "${VQ_CKPT:-}" ]] || require_file "$VQ_CKPT" "VQ checkpoint (VQ_CKPT)" "$T2I_DOWNLOAD"
    [[ -z "${TEXT_ENCODER:-}" ]] || require_text_encoder "$TEXT_ENCODER"
    RUN_NAME="${RUN_NAME:-$(run_name "$MODEL_OR_CKPT" "$STEP" "$CFG")}"
    pick_devices "$GPU"
    model_flags
}

# t2i_launch MODULE OUTDIR ARGS...: run a t2i sampling module with the flags t2i_setup set.
t2i_launch() {
    local module="$1" outdir="$2"
    shift 2
    launch_module "$module" \
        --gpt_ckpt "$MODEL_OR_CKPT" \
        --ckpt_step "$STEP" \
        "${MODEL_FLAGS[@]}" \
        --cfg_scale "$CFG" \
        --top_k "$TOP_K" \
        --n_samples "$N_SAMPLES" \
        --per_proc_batch_size "$PER_PROC_BATCH_SIZE" \
        --seed "$SEED" \
        --outdir "$outdir" \
        "$@"
}

# t2i_run LABEL MODULE OUTDIR_PREFIX PROMPTS_FLAG PROMPTS_FILE PROMPTS_WHAT DATASET MODEL_OR_CKPT GPU STEP CFG ARGS...:
# the body of test_t2i.sh and test_t2i_rewards_drawbench.sh. t2i_setup, then check the prompt file (DATASET names
# the download_prompts set that fetches it), say what runs, and launch MODULE into OUT_ROOT/<OUTDIR_PREFIX><RUN_NAME>
# with PROMPTS_FLAG PROMPTS_FILE and the remaining ARGS.
t2i_run() {
    local label="$1" module="$2" prefix="$3" flag="$4" prompts="$5" what="$6" dataset="$7" outdir
    shift 7
    t2i_setup "$@"
    shift $(( $# < 4 ? $# : 4 ))
    require_file "$prompts" "$what" "Fetch it with: python -m dataset.download_prompts $dataset"
    outdir="$OUT_ROOT/$prefix$RUN_NAME"
    echo "$label of $MODEL_OR_CKPT${STEP:+ step $STEP}, cfg $CFG, $NPROC process(es) -> $outdir"
    t2i_launch "$module" "$outdir" "$flag" "$prompts" "$@"
}
