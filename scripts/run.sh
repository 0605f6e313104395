#!/usr/bin/env bash
# `make run`: Rhythm on one machine with embedded defaults (SQLite database and SQLite Celery broker in ./var).
# Migrates, starts a Celery worker and beat in the background, serves the API in the foreground; Ctrl-C stops
# all three. Any RHYTHM_* variable set in the environment wins over the defaults (e.g. Postgres and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p var

# Secrets are generated once and kept in ./var (mode 600) so tokens and encrypted data survive restarts.
secret() {
  local file="var/$1"
  if [ ! -s "$file" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$file")
  fi
  cat "$file"
}
export RHYTHM_ADMIN_TOKEN="${RHYTHM_ADMIN_TOKEN:-$(secret admin_token)}"
export RHYTHM_SECRET_KEY="${RHYTHM_SECRET_KEY:-$(secret secret_key)}"
export RHYTHM_PORT="${RHYTHM_PORT:-8000}"

"$BIN/rhythm" db upgrade

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM

"$BIN/celery" -A workers.celery_app worker -Q ingest,calendar,finetune,default --concurrency 1 -l INFO >var/worker.log 2>&1 &
pids+=("$!")
"$BIN/celery" -A workers.celery_app beat -l INFO --schedule var/celerybeat-schedule >var/beat.log 2>&1 &
pids+=("$!")

cat <<INFO

  Rhythm is starting on http://127.0.0.1:${RHYTHM_PORT}
  API docs:     http://127.0.0.1:${RHYTHM_PORT}/docs
  Admin token:  ${RHYTHM_ADMIN_TOKEN}
  Worker/beat logs: var/worker.log, var/beat.log. Ctrl-C stops everything.

INFO
"$BIN/rhythm" serve
