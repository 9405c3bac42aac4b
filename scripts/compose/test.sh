#!/usr/bin/env bash
# make test-compose: build the images and run the per-service compose stack for real.
#
# No registry is reachable here (CONTAINERS.md), so this script starts its own dockerd under a
# temporary folder, debootstraps a minimal Debian bookworm and builds local stand-ins tagged
# with the official base-image names our Dockerfiles and compose files use (python, redis,
# postgres). The Dockerfiles stay the ones a user builds against the official images: only
# CI swaps the bases. Then, each service with its own compose file, in dependency order:
#   build cold and warm, image checks, up to healthy, scale workers to 3 (3 distinct RQ
#   workers do note tasks), a CSV replay checked against a reference through the API and the
#   gateway's WebSocket, the per-agent profile, restart the orchestrator alone (the others keep
#   their IDs and start times), recreate Redis alone (apps reconnect, AOF data survives), the
#   development override's live reload, the tests' testcontainers path on the stand-ins, and
#   the Makefile's down/clean-compose. A step whose feature is not there yet says SKIP.
# Everything is torn down and the machine restored (lib.sh) on any exit. Timings go to
# .bench/compose.json. Needs root (dockerd, iptables) and the packages scripts/compose/deps.sh
# installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
VENV_PYTHON=$PY
# shellcheck source=scripts/compose/lib.sh
source scripts/compose/lib.sh
# shellcheck source=scripts/compose/standins.sh
source scripts/compose/standins.sh

STARTED=$SECONDS
SUMMARY=()
declare -A METRIC=()
ARTIFACTS=$ROOT/test-artifacts/compose
# The integration tests run once on the testcontainers path: a subset that covers Redis, PostgreSQL,
# migrations, a real worker and the API (COMPOSE_PYTEST_ARGS to change it).
PYTEST_SUBSET=${COMPOSE_PYTEST_ARGS:-tests/agentsys/test_migrate.py tests/worker/test_note.py tests/worker/test_pipeline_basic.py tests/orchestrator/test_health.py}
SERVICES=(redis postgres orchestrator worker gateway)

pass() { SUMMARY+=("PASS  $*"); log "PASS $*"; }
skip() { SUMMARY+=("SKIP  $*"); log "SKIP $*"; }
fail() { SUMMARY+=("FAIL  $*"); log "FAIL $*"; exit 1; }
metric() { METRIC[$1]=$2; }
since() { echo $((SECONDS - $1)); }
now_ms() { date +%s%3N; }
secs_since_ms() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "timed out after ${limit}s: $what"; return 1; }
        sleep 0.5
    done
}

dc() {  # dc SERVICE ARGS...: docker compose with that service's own file
    local svc=$1
    shift
    "$DOCKER_BIN" compose -f "$SRC/services/$svc/docker-compose.yml" "$@"
}
rcli() { "$DOCKER_BIN" exec agent-redis redis-cli --no-auth-warning "$@"; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }
http_ok() { [[ $(http_code "$1") == 200 ]]; }
api() { curl -sS --max-time 90 -H "Authorization: Bearer $API_TOKEN" "$@"; }
json() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
snapshot() {
    "$DOCKER_BIN" ps -q | xargs -r "$DOCKER_BIN" inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}' | sort
}
free_port() {  # the default when free on loopback, else any free port
    "$PY" - "$1" <<'PY'
import socket, sys
for port in (int(sys.argv[1]), 0):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
PY
}

write_metrics() {
    mkdir -p "$ROOT/.bench"
    local args=()
    local k
    for k in "${!METRIC[@]}"; do args+=("$k=${METRIC[$k]}"); done
    "$PY" - "$ROOT/.bench/compose.json" "${args[@]}" <<'PY' || true
import json, sys, time
out = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
for item in sys.argv[2:]:
    key, _, value = item.partition("=")
    try:
        value = json.loads(value)
    except ValueError:
        pass
    node = out
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write("\n")
PY
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n "${D:-}" && -S "$D/docker.sock" ]]; then
        if ((rc != 0)); then
            mkdir -p "$ARTIFACTS"
            log "saving container logs to ${ARTIFACTS#"$ROOT"/}"
            local p
            for p in $("$DOCKER_BIN" ps -a --format '{{.Names}}'); do
                "$DOCKER_BIN" logs --tail 200 "$p" >"$ARTIFACTS/$p.log" 2>&1
            done
            cp "$D"/*.log "$ARTIFACTS/" 2>/dev/null
        fi
        local s
        for s in gateway worker orchestrator postgres redis; do
            "$DOCKER_BIN" compose -p "agent-system-$s" down -v --remove-orphans --timeout 5 >/dev/null 2>&1
        done
        "$DOCKER_BIN" ps -aq | xargs -r "$DOCKER_BIN" rm -f >/dev/null 2>&1
        "$DOCKER_BIN" network rm agent-system-net >/dev/null 2>&1
    fi
    machine_restore
    metric total_s "$(since "$STARTED")"
    metric result "\"$( ((rc == 0)) && echo pass || echo fail)\""
    write_metrics
    printf '\n== test-compose summary (%ss) ==\n' "$(since "$STARTED")" >&2
    printf '  %s\n' "${SUMMARY[@]}" >&2
    ((rc == 0)) && echo "test-compose: passed" >&2 || echo "test-compose: FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- prerequisites ---------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || { echo "test-compose: needs root (it runs its own dockerd and edits iptables)" >&2; exit 1; }
[[ -x $PY ]] || { echo "test-compose: run 'make setup' first (.venv)" >&2; exit 1; }
t=$SECONDS
scripts/compose/deps.sh
metric deps_s "$(since $t)"

PY_IMAGE=$(awk '/^FROM / {print $2; exit}' services/orchestrator/Dockerfile)
for f in services/worker/Dockerfile services/gateway/Dockerfile; do
    [[ $(awk '/^FROM / {print $2; exit}' "$f") == "$PY_IMAGE" ]] || fail "$f does not use $PY_IMAGE"
done
REDIS_IMAGE=$(awk '$1 == "image:" && $2 ~ /^redis:/ {print $2; exit}' services/redis/docker-compose.yml)
PG_IMAGE=$(awk '$1 == "image:" && $2 ~ /^postgres:/ {print $2; exit}' services/postgres/docker-compose.yml)
[[ -n $REDIS_IMAGE && -n $PG_IMAGE ]] || fail "no redis/postgres image in the compose files"

# Throwaway secrets (URL-safe, as the compose files ask) and free loopback ports.
REDIS_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
POSTGRES_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
API_TOKEN=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
REDIS_HOST_PORT=$(free_port 6380)
POSTGRES_HOST_PORT=$(free_port 5433)
ORCHESTRATOR_HOST_PORT=$(free_port 8001)
GATEWAY_HOST_PORT=$(free_port 8081)
export REDIS_PASSWORD POSTGRES_PASSWORD API_TOKEN REDIS_HOST_PORT POSTGRES_HOST_PORT ORCHESTRATOR_HOST_PORT GATEWAY_HOST_PORT
unset ENVIRONMENT KEY_PREFIX IMAGE_TAG REDIS_URL DATABASE_URL
API=http://127.0.0.1:$ORCHESTRATOR_HOST_PORT
GW=http://127.0.0.1:$GATEWAY_HOST_PORT
[[ -n "${PIP_CERT:-}" && -r "${PIP_CERT}" ]] || unset PIP_CERT

# ---- a snapshot of the sources, the daemon and base-image stand-ins --------------------------
compose_workdir
# Everything below builds and runs one copy of the tree, so edits made in the checkout while the
# test runs cannot change it halfway (and the live-reload edit never touches the checkout).
SRC=$D/src
mkdir -p "$SRC"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' --exclude=node_modules --exclude=build \
    -cf - constraints.txt .dockerignore libs/agentsys services | tar -C "$SRC" -xf -
dockerd_start
t=$SECONDS
standins_build "$PY_IMAGE" "$REDIS_IMAGE" "$PG_IMAGE"
metric standins_s "$(since $t)"
pass "daemon and stand-ins for $PY_IMAGE, $REDIS_IMAGE, $PG_IMAGE ($(since $t)s)"

# ---- build: cold, then warm ------------------------------------------------------------------
t=$SECONDS
for s in orchestrator worker gateway; do
    t1=$SECONDS
    dc "$s" build >"$D/build-$s.log" 2>&1 || { tail -n 40 "$D/build-$s.log" >&2; fail "build $s"; }
    metric "build_cold_s.$s" "$(since "$t1")"
done
metric build_cold_s.total "$(since $t)"
t=$SECONDS
for s in orchestrator worker gateway; do
    t1=$SECONDS
    dc "$s" build >"$D/build-warm-$s.log" 2>&1 || fail "warm build $s"
    metric "build_warm_s.$s" "$(since "$t1")"
done
metric build_warm_s.total "$(since $t)"
pass "images built (cold ${METRIC[build_cold_s.total]}s, warm ${METRIC[build_warm_s.total]}s)"

for s in orchestrator worker gateway; do
    image=agent-system/$s:local
    size=$("$DOCKER_BIN" image inspect -f '{{.Size}}' "$image")
    metric "image_mb.$s" "$((size / 1000000))"
    [[ $("$DOCKER_BIN" image inspect -f '{{.Config.User}}' "$image") == 10001:10001 ]] || fail "$image does not run as uid 10001"
    [[ -n $("$DOCKER_BIN" image inspect -f '{{if .Config.Healthcheck}}yes{{end}}' "$image") ]] || fail "$image has no HEALTHCHECK"
    # Only the service's own package and the shared library: a sibling service must not import.
    for other in orchestrator worker gateway; do
        [[ $other == "$s" ]] && continue
        if "$DOCKER_BIN" run --rm --entrypoint python "$image" -c "import $other" >/dev/null 2>&1; then
            fail "$image can import $other (only its own package belongs in it)"
        fi
    done
    "$DOCKER_BIN" run --rm --entrypoint python "$image" -c "import agentsys, $s" >/dev/null || fail "$image cannot import agentsys and $s"
done
metric image_mb.redis "$(($("$DOCKER_BIN" image inspect -f '{{.Size}}' "$REDIS_IMAGE") / 1000000))"
metric image_mb.postgres "$(($("$DOCKER_BIN" image inspect -f '{{.Size}}' "$PG_IMAGE") / 1000000))"
metric image_mb.python_base "$(($("$DOCKER_BIN" image inspect -f '{{.Size}}' "$PY_IMAGE") / 1000000))"
pass "images: non-root, HEALTHCHECK, own package only (MB: orchestrator ${METRIC[image_mb.orchestrator]}, worker ${METRIC[image_mb.worker]}, gateway ${METRIC[image_mb.gateway]}; base ${METRIC[image_mb.python_base]})"

"$DOCKER_BIN" run --rm --entrypoint sh agent-system/worker:local -c 'command -v agent-scheduler' >/dev/null 2>&1 \
    || fail "scheduler: the worker image has no agent-scheduler entry point"

# ---- up, one compose file per service, in dependency order -----------------------------------
"$DOCKER_BIN" network create agent-system-net >/dev/null
start_ms=$(now_ms)
for s in "${SERVICES[@]}"; do
    t1=$(now_ms)
    dc "$s" up -d --wait >"$D/up-$s.log" 2>&1 || { cat "$D/up-$s.log" >&2; fail "up $s"; }
    metric "up_s.$s" "$(secs_since_ms "$t1")"
done
metric up_to_healthy_s "$(secs_since_ms "$start_ms")"
wait_until 30 "orchestrator /readyz" http_ok "$API/readyz" || fail "orchestrator not ready: $(curl -s "$API/readyz")"
pass "stack up and healthy in ${METRIC[up_to_healthy_s]}s (redis, postgres, orchestrator, worker, gateway)"
leader_held() { [[ -n $(rcli get agentsys:scheduler:leader) ]]; }
wait_until 30 "the scheduler's leader lock" leader_held || fail "no scheduler holds the leader lock"
pass "scheduler running and holding the leader lock ($(rcli get agentsys:scheduler:leader))"

# ---- scale workers to 3: three distinct RQ workers, each doing work --------------------------
t=$SECONDS
dc worker up -d --wait --scale worker=3 worker >"$D/scale.log" 2>&1 || { cat "$D/scale.log" >&2; fail "scale worker=3"; }
metric scale_to_3_s "$(since $t)"
worker_ids=$(dc worker ps -q worker | cut -c1-12 | sort)
[[ $(wc -l <<<"$worker_ids") == 3 ]] || fail "expected 3 worker containers, got: $worker_ids"
registered=$(rcli smembers rq:workers | sed 's/^rq:worker://' | sort)
for id in $worker_ids; do
    grep -q "^$id\." <<<"$registered" || fail "worker container $id is not registered in rq:workers ($registered)"
done
pass "scaled to 3 workers, each registered in Redis ($(tr '\n' ' ' <<<"$worker_ids"))"

code=$(curl -s -o "$D/note.json" -w '%{http_code}' -X POST "$API/tasks" -H "Authorization: Bearer $API_TOKEN" \
    -H 'Content-Type: application/json' -d '{"description": "compose probe", "priority": 1}' || true)
{
    [[ $code == 202 ]] || fail "POST /tasks answered $code: $(cat "$D/note.json")"
    ids=("$(json 'd["id"]' <"$D/note.json")")
    for i in $(seq 2 12); do
        ids+=("$(api -X POST "$API/tasks" -H 'Content-Type: application/json' \
            -d "{\"description\": \"compose note $i\", \"priority\": 1}" | json 'd["id"]')")
    done
    workers=()
    for id in "${ids[@]}"; do
        line=$(api "$API/tasks/$id?wait=30" | json 'd["state"] + " " + str(d["worker"])')
        [[ $line == finished\ * ]] || fail "note task $id: $line"
        workers+=("${line#finished }")
    done
    distinct=$(printf '%s\n' "${workers[@]}" | sort -u)
    [[ $(wc -l <<<"$distinct") -ge 3 ]] || fail "12 note tasks ran on fewer than 3 workers: $(tr '\n' ' ' <<<"$distinct")"
    pass "12 note tasks finished on 3 distinct workers ($(tr '\n' ' ' <<<"$distinct"))"
}

# ---- a CSV replay end to end: bangs through the API and the gateway's WebSocket --------------
"$PY" scripts/compose/replay_check.py --api "$API" --ws "ws://127.0.0.1:$GATEWAY_HOST_PORT/ws" >"$D/replay.json" \
    || { cat "$D/replay.json" >&2; fail "replay: $(cat "$D/replay.json")"; }
metric replay "$(cat "$D/replay.json")"
replay=$(json 'd["replay"]' <"$D/replay.json")
case $replay in
    pass) pass "replay of $(json '"%s symbols x %s bars in %s s, %s bangs match the reference" % (d["symbols"], d["bars"], d["replay_seconds"], d["api_bangs"])' <"$D/replay.json")" ;;
    *) fail "replay: $replay" ;;
esac
ws=$(json 'd.get("ws", "fail: not run")' <"$D/replay.json")
case $ws in
    pass) pass "gateway WebSocket delivered all $(json 'd["ws_bangs"]' <"$D/replay.json") bangs" ;;
    *) fail "gateway WebSocket: $ws" ;;
esac

if [[ $replay == pass ]]; then
    # Two more replays (new symbols each time) for the timing: one run on a shared machine is noisy.
    times=$(json 'd["replay_seconds"]' <"$D/replay.json")
    for i in 2 3; do
        "$PY" scripts/compose/replay_check.py --api "$API" >"$D/replay-$i.json" \
            || fail "replay $i: $(cat "$D/replay-$i.json")"
        times+=", $(json 'd["replay_seconds"]' <"$D/replay-$i.json")"
    done
    metric replay_seconds "[$times]"
    pass "replay timings (100 symbols x 500 bars, 3 workers): $times s"
fi

# ---- per-agent profile: one dedicated worker per agent queue ---------------------------------
t=$SECONDS
dc worker --profile per-agent up -d --wait worker-price worker-indicator worker-bang >"$D/per-agent.log" 2>&1 \
    || { cat "$D/per-agent.log" >&2; fail "per-agent profile up"; }
for agent in price indicator bang; do
    cid=$(dc worker --profile per-agent ps -q "worker-$agent" | cut -c1-12)
    name=$(rcli smembers rq:workers | sed 's/^rq:worker://' | grep "^$cid\." || true)
    [[ -n $name ]] || fail "worker-$agent ($cid) is not registered"
    queues=$(rcli hget "rq:worker:$name" queues)
    [[ $queues == "$agent,$agent.low" || $queues == "$agent" ]] || fail "worker-$agent listens on '$queues'"
done
dc worker --profile per-agent rm -sf worker-price worker-indicator worker-bang >/dev/null 2>&1
metric per_agent_s "$(since $t)"
pass "per-agent profile: worker-price, worker-indicator, worker-bang each on its own queue"

# ---- restart the orchestrator alone -----------------------------------------------------------
before=$(snapshot)
t1=$(now_ms)
dc orchestrator restart orchestrator >/dev/null 2>&1 || fail "restart orchestrator"
metric orchestrator_restart_s "$(secs_since_ms "$t1")"
after=$(snapshot)
others_before=$(grep -v '^/agent-orchestrator ' <<<"$before")
others_after=$(grep -v '^/agent-orchestrator ' <<<"$after")
[[ $others_before == "$others_after" ]] || fail "restarting the orchestrator touched other containers: $(diff <(echo "$others_before") <(echo "$others_after"))"
o_before=$(grep '^/agent-orchestrator ' <<<"$before")
o_after=$(grep '^/agent-orchestrator ' <<<"$after")
[[ ${o_before% *} == "${o_after% *}" && $o_before != "$o_after" ]] || fail "orchestrator was not restarted in place"
[[ $("$DOCKER_BIN" inspect -f '{{.State.ExitCode}}' agent-orchestrator) == 0 ]] || fail "orchestrator did not exit cleanly on SIGTERM"
wait_until 30 "orchestrator /readyz after restart" http_ok "$API/readyz" || fail "orchestrator not ready after restart"
pass "orchestrator restarted alone in ${METRIC[orchestrator_restart_s]}s (clean SIGTERM exit); $(wc -l <<<"$others_after") other containers kept ID and start time"

# ---- recreate Redis alone: apps reconnect, AOF data survives -----------------------------------
rcli set compose-test:aof survived >/dev/null
sleep 1.5  # appendfsync everysec: let one fsync pass (the one fixed wait: Redis's own timer)
old_id=$("$DOCKER_BIN" inspect -f '{{.Id}}' agent-redis)
t1=$(now_ms)
dc redis up -d --force-recreate --wait >/dev/null 2>&1 || fail "recreate redis"
[[ $("$DOCKER_BIN" inspect -f '{{.Id}}' agent-redis) != "$old_id" ]] || fail "redis was not recreated"
[[ $(rcli get compose-test:aof) == survived ]] || fail "a key written before the recreate is gone (append-only volume?)"
rcli del compose-test:aof >/dev/null
wait_until 60 "orchestrator /readyz after the Redis recreate" http_ok "$API/readyz" || fail "orchestrator did not reconnect to Redis"
if [[ $(http_code "$GW/readyz") != 404 ]]; then
    wait_until 60 "gateway /readyz after the Redis recreate" http_ok "$GW/readyz" || fail "gateway did not resubscribe to Redis"
fi
if [[ ${code:-} == 202 ]]; then
    id=$(api -X POST "$API/tasks" -H 'Content-Type: application/json' -d '{"description": "after recreate", "priority": 1}' | json 'd["id"]')
    line=$(api "$API/tasks/$id?wait=60" | json 'd["state"] + " " + str(d["worker"])')
    [[ $line == finished\ * ]] || fail "a note task after the Redis recreate: $line"
fi
wait_until 90 "every container healthy after the Redis recreate" \
    bash -c "! \"$DOCKER_BIN\" ps --format '{{.Status}}' | grep -vq '(healthy)'" \
    || fail "not all healthy after the Redis recreate: $("$DOCKER_BIN" ps --format '{{.Names}} {{.Status}}' | tr '\n' ';')"
metric redis_recreate_to_ready_s "$(secs_since_ms "$t1")"
pass "Redis recreated alone: AOF data kept, orchestrator and gateway ready, workers took new work, all healthy (${METRIC[redis_recreate_to_ready_s]}s)"

# ---- development override: mounted source, reload on change -----------------------------------
# The snapshot's sources are mounted, so the edit below never touches the checkout.
devc() { "$DOCKER_BIN" compose -f "$SRC/services/orchestrator/docker-compose.yml" -f "$SRC/services/orchestrator/docker-compose.dev.yml" "$@"; }
server_pid() {
    "$DOCKER_BIN" top agent-orchestrator -o pid,args 2>/dev/null | awk '/agent-orchestrator --host/ && !/watchfiles/ {print $1; exit}'
}
devc up -d --wait orchestrator >"$D/dev.log" 2>&1 || { cat "$D/dev.log" >&2; fail "dev override up"; }
wait_until 30 "dev orchestrator ready" http_ok "$API/readyz" || fail "dev orchestrator not ready"
pid_before=$(server_pid)
[[ -n $pid_before ]] || fail "no orchestrator server process under watchfiles"
t1=$(now_ms)
printf '\n# compose test: live-reload probe\n' >>"$SRC/services/orchestrator/orchestrator/main.py"
reloaded() { local p; p=$(server_pid); [[ -n $p && $p != "$pid_before" ]] && http_ok "$API/healthz"; }
wait_until 30 "the orchestrator to reload after a source edit" reloaded || fail "no reload after editing a mounted file"
metric dev_reload_s "$(secs_since_ms "$t1")"
pass "dev override: editing a mounted source file restarted the orchestrator in ${METRIC[dev_reload_s]}s (server pid $pid_before -> $(server_pid))"

# ---- the tests' testcontainers path, on the stand-in images -----------------------------------
t=$SECONDS
since_ts=$(date +%s)
# shellcheck disable=SC2086  # a list of test paths
# Ryuk's image cannot be pulled. This machine may itself be a container (/.dockerenv), where
# testcontainers would reach containers through the bridge gateway; our daemon publishes on
# loopback only, so point it at 127.0.0.1 and the mapped ports.
env -u REDIS_URL -u DATABASE_URL TESTCONTAINERS_RYUK_DISABLED=true \
    TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 TESTCONTAINERS_CONNECTION_MODE=docker_host \
    AGENTSYS_TEST_REDIS_IMAGE="$REDIS_IMAGE" AGENTSYS_TEST_POSTGRES_IMAGE="$PG_IMAGE" \
    "$PY" -m pytest -q -p no:cacheprovider $PYTEST_SUBSET >"$D/pytest.log" 2>&1 \
    || { tail -n 40 "$D/pytest.log" >&2; fail "pytest on testcontainers"; }
started_images=$("$DOCKER_BIN" events --since "$since_ts" --until "$(date +%s)" --filter type=container \
    --filter event=start --format '{{.From}}' | sort -u)
grep -qxF "$REDIS_IMAGE" <<<"$started_images" && grep -qxF "$PG_IMAGE" <<<"$started_images" \
    || fail "pytest did not start testcontainers from the stand-ins (started: $(tr '\n' ' ' <<<"$started_images"))"
[[ -z $("$DOCKER_BIN" ps -aq --filter label=org.testcontainers.lang) ]] || fail "testcontainers left containers behind"
metric testcontainers_s "$(since $t)"
pass "testcontainers path: $(tail -n 1 "$D/pytest.log" | tr -d '=' | sed 's/^ *//') on $REDIS_IMAGE and $PG_IMAGE"

# ---- the Makefile's down and clean-compose -----------------------------------------------------
make -s ps DOCKER="$DOCKER_BIN" >"$D/make-ps.log" 2>&1 || { cat "$D/make-ps.log" >&2; fail "make ps"; }
grep -q agent-orchestrator "$D/make-ps.log" || fail "make ps does not list agent-orchestrator"
t=$SECONDS
make -s down DOCKER="$DOCKER_BIN" >"$D/make-down.log" 2>&1 || { cat "$D/make-down.log" >&2; fail "make down"; }
[[ -z $("$DOCKER_BIN" ps -q) ]] || fail "containers still running after make down: $("$DOCKER_BIN" ps --format '{{.Names}}' | tr '\n' ' ')"
"$DOCKER_BIN" volume inspect agent-redis-data agent-postgres-data >/dev/null 2>&1 || fail "make down removed the data volumes"
make -s clean-compose DOCKER="$DOCKER_BIN" >"$D/make-clean.log" 2>&1 || { cat "$D/make-clean.log" >&2; fail "make clean-compose"; }
[[ -z $("$DOCKER_BIN" ps -aq) ]] || fail "containers left after make clean-compose"
[[ -z $("$DOCKER_BIN" volume ls -q | grep -E '^agent-') ]] || fail "volumes left after make clean-compose"
! "$DOCKER_BIN" network inspect agent-system-net >/dev/null 2>&1 || fail "agent-system-net left after make clean-compose"
metric teardown_s "$(since $t)"
pass "make ps, make down (volumes kept), make clean-compose (containers, volumes, network gone)"
