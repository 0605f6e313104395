#!/usr/bin/env bash
# `make demo`: against a running `make run`, create a user and ask for one recommendation (what the README's
# quick start does by hand). A second run creates another user: demo users are cheap, and each starts with no
# history, so the model's first answer is the one a new user would get.
#
# The recommendation (JSON) goes to stdout; the user it created, its token and the next command to try go to
# stderr, so `make demo | jq` still works. Server: RHYTHM_BASE_URL, else http://127.0.0.1:$RHYTHM_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${RHYTHM_BASE_URL:-http://127.0.0.1:${RHYTHM_PORT:-8000}}"
URL="${URL%/}"
ADMIN="${RHYTHM_ADMIN_TOKEN:-$(cat "${RHYTHM_DATA_DIR:-var}/admin_token" 2>/dev/null || true)}"
fail() { echo "make demo: $*" >&2; exit 1; }

[ -n "$ADMIN" ] || fail "no admin token: start the service with 'make run' first (it writes ${RHYTHM_DATA_DIR:-var}/admin_token), or set RHYTHM_ADMIN_TOKEN."
curl -s -o /dev/null --max-time 5 "$URL/healthz" ||
  fail "nothing answers at $URL: start it with 'make run', or point RHYTHM_BASE_URL (or RHYTHM_PORT) at it."

# call METHOD PATH TOKEN BODY: the body of a 2xx answer on stdout; otherwise the server's error message, one line.
call() {
  local out status
  out=$(curl -s -w '\n%{http_code}' --max-time 30 -X "$1" "$URL$2" -H "Authorization: Bearer $3" \
    -H 'Content-Type: application/json' -d "$4") || fail "$1 $2 got no answer from $URL."
  status="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [ "${status:0:1}" != "2" ]; then
    message=$(printf '%s' "$out" | python3 -c 'import json, sys
try: print(json.load(sys.stdin)["error"]["message"])
except Exception: print("unexpected answer")' 2>/dev/null || echo "unexpected answer")
    fail "$1 $2 answered $status: $message"
  fi
  printf '%s' "$out"
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

CREATED=$(call POST /v1/users "$ADMIN" '{"timezone": "UTC"}')
USER_ID=$(printf '%s' "$CREATED" | field user_id)
TOKEN=$(printf '%s' "$CREATED" | field token)
ANSWER=$(call POST /v1/recommend "$TOKEN" \
  '{"meters": {"vitality": 0.7, "cognition": 0.6, "progress": 0.4, "serenity": 0.5, "connection": 0.3}}')
printf '%s' "$ANSWER" | python3 -m json.tool
REC_ID=$(printf '%s' "$ANSWER" | field recommendation_id)

cat >&2 <<NEXT

Created user ${USER_ID}
Its token (shown once): ${TOKEN}

Next, accept that recommendation:
  curl -s -X POST ${URL}/v1/feedback -H 'Authorization: Bearer ${TOKEN}' -H 'Content-Type: application/json' -d '{"recommendation_id": "${REC_ID}", "response": "accepted"}'
NEXT
