#!/usr/bin/env bash
# The deployment drill: docs/deploy.md followed on this machine, end to end.
#
# On the PostgreSQL and Redis at 127.0.0.1 (5432, 6379), with the checkout's
# virtualenv (./.venv, `make install`) and nothing else: the guide's env file
# (deploy/kartoteka.env.example with the drill's values), a fresh database,
# `manage.py check --deploy`, migrate, collectstatic, the first superuser; then the
# Procfile's processes, whose command lines are checked to be the systemd units':
# gunicorn with deploy/gunicorn.conf.py, worker "imports" (-Q imports,default),
# worker "campaigns" (-Q campaigns,segments) and beat, and nginx with
# deploy/nginx/kartoteka.conf when nginx is installed. A customers CSV goes through
# the import wizard over HTTP, a campaign is sent from its page to a real SMTP
# server, and the workers' logs must show each job on its own worker; beat's
# heartbeat must run on the default queue and /ready/ answer 200. Then the
# processes stop as in an upgrade (web, workers drained with TERM, beat last), and
# the backup drill: deploy/backup.sh (pg_dump -Fc), pg_restore into a second
# database, the same row count in every table, and no migration missing there.
#
# Exits non-zero with "DRILL FAILED: ..." on any failure; every process, database
# and Redis database it used is gone afterwards (its logs are kept on failure).
#   deploy/drill.sh     # DRILL_DB, DRILL_REDIS_DB (12): other names; DRILL_NGINX=0:
#                       # straight to gunicorn even where nginx is installed
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
DB=${DRILL_DB:-kartoteka_drill}
RESTORED="${DB}_restored"
REDIS_DB=${DRILL_REDIS_DB:-12}
CACHE_DB=$((REDIS_DB + 1))
PG=(-h 127.0.0.1 -p 5432 -U postgres)
export PGOPTIONS="-c client_min_messages=warning"
STARTED=$(date +%s)

fail() { echo "DRILL FAILED: $*" >&2; exit 1; }
step() { echo "== [$(($(date +%s) - STARTED))s] $*"; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[ -x "$PY" ] || fail "no virtualenv at ./.venv (run make install)"
answers 5432 || fail "PostgreSQL does not answer on 127.0.0.1:5432"
answers 6379 || fail "Redis does not answer on 127.0.0.1:6379"
for tool in psql pg_dump pg_restore; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kartoteka-drill.XXXXXX")
ENV_FILE="$WORK/kartoteka.env"
declare -A PIDS=()
OK=0

redis_flush() {
    "$PY" - "$REDIS_DB" "$CACHE_DB" <<'PY'
import sys

import redis

for db in sys.argv[1:]:
    redis.Redis(host="127.0.0.1", port=6379, db=int(db)).flushdb()
PY
}

stop() {  # stop NAME [TIMEOUT]: SIGTERM to its process group, wait, then SIGKILL
    local name=$1 timeout=${2:-30} pid=${PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    unset "PIDS[$name]"
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq $((timeout * 5))); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    echo "  $name did not stop within ${timeout}s: killed" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    return 1
}

cleanup() {
    local code=$?
    set +e
    for name in "${!PIDS[@]}"; do stop "$name" 10; done
    psql "${PG[@]}" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $RESTORED WITH (FORCE)" postgres >/dev/null 2>&1
    redis_flush >/dev/null 2>&1
    if [ "$OK" = 1 ]; then
        rm -rf "$WORK"
        echo "== drill passed in $(($(date +%s) - STARTED))s"
    else
        for log in "$WORK"/*.log; do
            [ -f "$log" ] || continue
            echo "---- last lines of $log" >&2
            tail -n 15 "$log" >&2
        done
        echo "DRILL FAILED (exit $code): logs kept in $WORK" >&2
        [ "$code" = 0 ] && code=1
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME COMMAND: a Procfile line, as honcho/foreman would run it: from the
# checkout, the venv's bin/ first on PATH, the env file's variables exported.
start() {
    local name=$1 command=$2
    setsid bash -c 'cd "$1" && export PATH="$1/.venv/bin:$PATH" ENV_FILE="$2" &&
        eval "$("$1/.venv/bin/python" deploy/drill.py exports "$2")" && exec bash -c "exec $3"' \
        _ "$ROOT" "$ENV_FILE" "$command" >"$WORK/$name.log" 2>&1 </dev/null &
    PIDS[$name]=$!
}

alive() {
    for name in "${!PIDS[@]}"; do
        kill -0 "${PIDS[$name]}" 2>/dev/null || fail "$name exited (see $WORK/$name.log)"
    done
}

# manage ARGS: the guide's `ENV_FILE=/etc/kartoteka/kartoteka.env .venv/bin/python
# manage.py ...`, with nothing else from this shell's environment.
manage() {
    env -i PATH=/usr/bin:/bin HOME="$WORK" LANG=C.UTF-8 ENV_FILE="$ENV_FILE" \
        "$PY" manage.py "$@"
}

step "the systemd units and the Procfile run the same command lines"
"$PY" deploy/drill.py commands >"$WORK/procfile.tsv" || fail "unit files and Procfile differ"
procfile() { awk -F'\t' -v n="$1" '$1 == n { print $2 }' "$WORK/procfile.tsv"; }

step "an SMTP server for the campaign, a port for gunicorn, the env file"
mkdir -p "$WORK/sink" "$WORK/media"
setsid "$PY" deploy/drill.py sink "$WORK/sink" >"$WORK/smtp.log" 2>&1 </dev/null &
PIDS[smtp]=$!
for _ in $(seq 50); do [ -s "$WORK/sink/port" ] && break; sleep 0.1; done
[ -s "$WORK/sink/port" ] || fail "the SMTP sink did not start"
PORT=$(free_port)
# With nginx installed, the browser's requests go through the guide's nginx site
# over TLS (a self-signed certificate) and probes over plain HTTP; without it,
# straight to gunicorn with the headers nginx would add.
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
[ "${DRILL_NGINX:-1}" = 0 ] && NGINX=""
if [ -n "$NGINX" ] && command -v openssl >/dev/null; then
    TLS_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    SITE="https://127.0.0.1:$TLS_PORT"
    PROBE="http://127.0.0.1:$HTTP_PORT"
    echo "  nginx: $SITE (TLS), $PROBE (probes) -> gunicorn 127.0.0.1:$PORT"
else
    NGINX=""
    SITE="http://127.0.0.1:$PORT"
    PROBE=$SITE
    echo "  no nginx here: straight to gunicorn at $SITE, with nginx's headers"
fi
ORIGIN="https://${SITE#*://}"
SECRET=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(50))')
"$PY" deploy/drill.py envfile "$ENV_FILE" \
    "SECRET_KEY=$SECRET" "SUPPRESSION_KEY=$SECRET-suppression" \
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB" \
    "CELERY_BROKER_URL=redis://127.0.0.1:6379/$REDIS_DB" \
    "CACHE_URL=redis://127.0.0.1:6379/$CACHE_DB" \
    "ALLOWED_HOSTS=127.0.0.1" \
    "CSRF_TRUSTED_ORIGINS=$ORIGIN" \
    "PUBLIC_URL=$ORIGIN" \
    "EMAIL_URL=smtp://127.0.0.1:$(cat "$WORK/sink/port")" \
    "DEFAULT_FROM_EMAIL=Sklep Drill <sklep@drill.example.pl>" \
    "MEDIA_ROOT=$WORK/media" \
    "GUNICORN_BIND=127.0.0.1:$PORT" "WEB_CONCURRENCY=2" "GUNICORN_THREADS=2"

step "a fresh database $DB and Redis databases $REDIS_DB, $CACHE_DB"
psql "${PG[@]}" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $RESTORED WITH (FORCE)" -c "CREATE DATABASE $DB" \
    postgres >/dev/null || fail "could not create the database $DB"
redis_flush || fail "could not empty Redis databases $REDIS_DB and $CACHE_DB"

step "manage.py check --deploy, migrate, collectstatic, the first superuser"
manage check --deploy >"$WORK/check.log" 2>&1 || fail "manage.py check --deploy failed"
manage migrate --noinput >"$WORK/migrate.log" 2>&1 || fail "migrate failed"
manage collectstatic --noinput >"$WORK/collectstatic.log" 2>&1 \
    || fail "collectstatic failed (see $WORK/collectstatic.log)"
env DJANGO_SUPERUSER_PASSWORD="$SECRET" bash -c \
    'exec env -i PATH=/usr/bin:/bin HOME="$2" ENV_FILE="$1" DJANGO_SUPERUSER_PASSWORD="$DJANGO_SUPERUSER_PASSWORD" \
     "$3" manage.py createsuperuser --noinput --username admin --email admin@drill.example.pl' \
    _ "$ENV_FILE" "$WORK" "$PY" >"$WORK/superuser.log" 2>&1 || fail "createsuperuser failed"

step "web (gunicorn), worker imports, worker campaigns and beat, from the Procfile"
for name in web worker_imports worker_campaigns beat; do
    command=$(procfile "$name")
    [ -n "$command" ] || fail "no $name in deploy/Procfile"
    echo "  $name: $command"
    start "$name" "$command"
done
if [ -n "$NGINX" ]; then
    mkdir -p "$WORK/nginx/body" "$WORK/nginx/proxy"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/nginx/key.pem" \
        -out "$WORK/nginx/cert.pem" 2>/dev/null || fail "openssl could not make a certificate"
    "$PY" deploy/drill.py nginx "$WORK/nginx" "$ROOT" "$PORT" "$TLS_PORT" "$HTTP_PORT" \
        || fail "could not adapt deploy/nginx/kartoteka.conf"
    "$NGINX" -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx.log" \
        || fail "nginx -t refuses deploy/nginx/kartoteka.conf: $(cat "$WORK/nginx.log")"
    setsid "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g "daemon off;" \
        >>"$WORK/nginx.log" 2>&1 </dev/null &
    PIDS[nginx]=$!
    export DRILL_CA="$WORK/nginx/cert.pem"
    echo "  nginx: deploy/nginx/kartoteka.conf (ports, certificate and paths adapted)"
fi
"$PY" deploy/drill.py up "$PROBE" || fail "gunicorn did not come up"
HOST=$(hostname)
# The guide's check: `env ENV_FILE=... .venv/bin/celery --app config inspect ping`.
for attempt in $(seq 30); do
    replies=$(env -i PATH=/usr/bin:/bin HOME="$WORK" ENV_FILE="$ENV_FILE" \
        "$ROOT/.venv/bin/celery" --app config inspect ping --timeout 2 \
        --destination "imports@$HOST,campaigns@$HOST" 2>&1 || true)
    if grep -q "imports@$HOST: OK" <<<"$replies" && grep -q "campaigns@$HOST: OK" <<<"$replies"; then
        break
    fi
    [ "$attempt" = 30 ] && fail "the workers imports@$HOST and campaigns@$HOST do not answer a ping: $replies"
    sleep 1
done
echo "  imports@$HOST and campaigns@$HOST answer a ping"
alive

export ENV_FILE
eval "$("$PY" deploy/drill.py exports "$ENV_FILE")"

step "static files (collectstatic, $([ -n "$NGINX" ] && echo nginx || echo WhiteNoise))"
"$PY" deploy/drill.py static "$SITE" || fail "the static files are not served"

step "a staff session (with the second factor), then an import over HTTP"
"$PY" deploy/drill.py prepare "$WORK/state.json"
"$PY" deploy/drill.py import "$SITE" "$WORK/state.json" || fail "the import did not run"
alive

step "a campaign sent from its page to the SMTP server"
"$PY" deploy/drill.py campaign "$SITE" "$WORK/state.json" "$WORK/sink" \
    || fail "the campaign did not arrive"
alive

step "each job ran on its own worker"
"$PY" deploy/drill.py tasks \
    "$WORK/worker_imports.log" customers.tasks.import_job_check_task \
    customers.tasks.import_job_run_task -- \
    "$WORK/worker_campaigns.log" campaigns.tasks.campaign_prepare_task \
    campaigns.tasks.campaign_send_task || fail "a job ran on the wrong worker"

step "beat's heartbeat taken from the default queue: /ready/"
"$PY" deploy/drill.py ready "$PROBE" "$WORK/worker_imports.log" 100 \
    || fail "beat's heartbeat did not run, or /ready/ did not answer 200"
alive

step "stop as an upgrade does: web, the workers drained with TERM, beat last"
stop nginx 10 || true
stop web 45 || fail "gunicorn did not stop on TERM"
stop worker_imports 60 || fail "worker imports did not drain on TERM"
stop worker_campaigns 60 || fail "worker campaigns did not drain on TERM"
stop beat 30 || fail "beat did not stop on TERM"
grep -q '"level": "ERROR"\|Traceback' "$WORK"/worker_*.log "$WORK/web.log" \
    && fail "errors in the logs: $(grep -l '"level": "ERROR"\|Traceback' "$WORK"/*.log | tr '\n' ' ')"

step "backup (deploy/backup.sh: pg_dump -Fc), restore into $RESTORED, compare"
DUMP=$(PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGDATABASE="$DB" \
    BACKUP_DIR="$WORK/backups" BACKUP_KEEP_DAYS=14 deploy/backup.sh) \
    || fail "deploy/backup.sh failed"
echo "  $(basename "$DUMP"): $(du -h "$DUMP" | cut -f1)"
psql "${PG[@]}" -q -c "CREATE DATABASE $RESTORED" postgres >/dev/null
pg_restore "${PG[@]}" --no-owner --exit-on-error --dbname="$RESTORED" "$DUMP" \
    || fail "pg_restore failed"
"$PY" deploy/drill.py counts "postgresql://postgres@127.0.0.1:5432/$DB" \
    "postgresql://postgres@127.0.0.1:5432/$RESTORED" || fail "the restore differs"
env -i PATH=/usr/bin:/bin HOME="$WORK" ENV_FILE="$ENV_FILE" \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$RESTORED" \
    "$PY" manage.py migrate --check >/dev/null || fail "the restored database lacks migrations"
echo "  the restored database is complete and current (migrate --check)"

stop smtp 5 || true
OK=1
