#!/usr/bin/env bash
# `make demo`: against a running `make run`, create a user and ask for one recommendation (what the README's
# quick start does by hand). A second run creates another user: demo users are cheap, and each starts with no
# history, so the model's first answer is the one a new user would get.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="http://127.0.0.1:${RHYTHM_PORT:-8000}"
ADMIN="${RHYTHM_ADMIN_TOKEN:-$(cat var/admin_token 2>/dev/null || true)}"
if [ -z "$ADMIN" ]; then
  echo "no admin token: start the service with 'make run' first (it writes var/admin_token)" >&2
  exit 1
fi
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

TOKEN=$(curl -sf -X POST "$URL/v1/users" -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{"timezone": "UTC"}' | json_field token)
curl -sf -X POST "$URL/v1/recommend" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"meters": {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}}' |
  python3 -m json.tool
