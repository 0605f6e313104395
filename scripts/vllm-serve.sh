#!/usr/bin/env bash
# Serve a policy model folder with the real vLLM CPU build (OpenAI-compatible API) in the foreground.
#
# Usage: scripts/vllm-serve.sh MODEL_DIR PORT [SERVED_NAME] [extra vLLM args...]
# Env:   RHYTHM_VLLM_VENV       the venv scripts/vllm-venv.sh built (built on demand when missing)
#        VLLM_CPU_KVCACHE_SPACE GiB of KV cache (default 1: the policy model is tiny)
#        RHYTHM_VLLM_MAX_MODEL_LEN context length (default: the model's max_position_embeddings; the policy
#                               prompt is capped well below it, see policy/prompt.py)
# exec's into vLLM, so the PID of this script is the PID of the server: stop it with `kill PID`.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL_DIR PORT [SERVED_NAME] [extra vLLM args...]" >&2
  exit 2
fi
MODEL_DIR="$(cd "$1" && pwd)"
PORT="$2"
NAME="${3:-rhythm-policy}"
shift $(( $# < 3 ? $# : 3 ))

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$("$HERE/vllm-venv.sh" | tail -n 1)"

MAX_LEN="${RHYTHM_VLLM_MAX_MODEL_LEN:-$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_position_embeddings"])' "$MODEL_DIR/config.json")}"

export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
# Registers /v1/load_lora_adapter: the fine-tune worker deploys per-user adapters at runtime. Keep the port private.
export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1

# The `vllm` console script looks up package metadata named "vllm" and fails for vllm-cpu: run the module.
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
  --model "$MODEL_DIR" \
  --served-model-name "$NAME" \
  --host 127.0.0.1 \
  --port "$PORT" \
  --dtype float32 \
  --max-model-len "$MAX_LEN" \
  --enable-lora \
  --max-lora-rank 8 \
  --max-loras 4 \
  --max-logprobs 20 \
  "$@"
