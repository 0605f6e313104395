#!/usr/bin/env bash
# `make run`: Rhythm on one machine with embedded defaults (SQLite database and SQLite Celery broker in the data
# directory, RHYTHM_DATA_DIR, default ./var). Migrates, starts a Celery worker and beat, serves the API; Ctrl-C
# stops all three. A worker or beat that dies is reported and restarted (logs in the data directory). Any
# RHYTHM_* variable set in the environment wins over the defaults (e.g. Postgres and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export RHYTHM_DATA_DIR="${RHYTHM_DATA_DIR:-var}"
export RHYTHM_HOST="${RHYTHM_HOST:-127.0.0.1}"
export RHYTHM_PORT="${RHYTHM_PORT:-8000}"
DATA="$RHYTHM_DATA_DIR"
# Seconds between checks that worker and beat still run.
SUPERVISE_EVERY="${RHYTHM_SUPERVISE_EVERY:-5}"

# First, before anything slow or destructive (migrations, model load, truncating the logs of the instance that
# holds the port): is the port free? bash's /dev/tcp connects, so this needs no Python.
probe_host="$RHYTHM_HOST"
[ "$probe_host" = "0.0.0.0" ] && probe_host=127.0.0.1
if (exec 3<>"/dev/tcp/$probe_host/$RHYTHM_PORT") 2>/dev/null; then
  echo "make run: port $RHYTHM_PORT on $probe_host is already in use (another 'make run'?): stop it, or set RHYTHM_PORT to a free port." >&2
  exit 1
fi

mkdir -p "$DATA"
# Secrets are generated once and kept in the data directory (mode 600) so tokens and encrypted data survive
# restarts.
secret() {
  local file="$DATA/$1"
  if [ ! -s "$file" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$file")
  fi
  cat "$file"
}
export RHYTHM_ADMIN_TOKEN="${RHYTHM_ADMIN_TOKEN:-$(secret admin_token)}"
export RHYTHM_SECRET_KEY="${RHYTHM_SECRET_KEY:-$(secret secret_key)}"

"$BIN/rhythm" db upgrade

worker_pid="" beat_pid="" serve_pid=""
# Exits: returning from the trap would resume the supervise loop, which would restart what was just stopped.
stop() {
  local status=$?
  trap - EXIT INT TERM
  for pid in $serve_pid $worker_pid $beat_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $serve_pid $worker_pid $beat_pid; do wait "$pid" 2>/dev/null || true; done
  exit "$status"
}
trap stop EXIT INT TERM

# Appended, not truncated: the log of a worker that died is what tells why.
start_worker() {
  "$BIN/celery" -A workers.celery_app worker -Q ingest,calendar,finetune,default --concurrency 1 -l INFO >>"$DATA/worker.log" 2>&1 &
  worker_pid=$!
}
start_beat() {
  "$BIN/celery" -A workers.celery_app beat -l INFO --schedule "$DATA/celerybeat-schedule" >>"$DATA/beat.log" 2>&1 &
  beat_pid=$!
}
start_worker
start_beat

cat <<INFO

  Rhythm is starting on http://${RHYTHM_HOST}:${RHYTHM_PORT}
  API docs:     http://${RHYTHM_HOST}:${RHYTHM_PORT}/docs
  Console:      http://${RHYTHM_HOST}:${RHYTHM_PORT}/console (sign in with the admin token or a user token)
  Admin token:  ${RHYTHM_ADMIN_TOKEN} (also in ${DATA}/admin_token)
  Worker/beat logs: ${DATA}/worker.log, ${DATA}/beat.log. Ctrl-C stops everything.

INFO
"$BIN/rhythm" serve &
serve_pid=$!

# Supervise: the API is the foreground service (its exit ends make run); worker and beat are restarted.
while kill -0 "$serve_pid" 2>/dev/null; do
  sleep "$SUPERVISE_EVERY" &
  wait $! || true
  if ! kill -0 "$worker_pid" 2>/dev/null; then
    status=0; wait "$worker_pid" 2>/dev/null || status=$?
    echo "make run: the Celery worker stopped (exit $status, see $DATA/worker.log); restarting it." >&2
    start_worker
  fi
  if ! kill -0 "$beat_pid" 2>/dev/null; then
    status=0; wait "$beat_pid" 2>/dev/null || status=$?
    echo "make run: Celery beat stopped (exit $status, see $DATA/beat.log); restarting it." >&2
    start_beat
  fi
done
status=0; wait "$serve_pid" 2>/dev/null || status=$?
exit "$status"
