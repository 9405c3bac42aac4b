# Local stand-ins for the official base images (no registry is reachable here; CONTAINERS.md).
# Source it after lib.sh, with a daemon running.
#
#   standins_build PY_IMAGE REDIS_IMAGE PG_IMAGE
#
# debootstraps a minbase Debian bookworm, imports it, and builds from it three images tagged
# with the official names our Dockerfiles and compose files use:
#   PY_IMAGE    Debian's python3 (3.11), python3-venv, python-is-python3
#   REDIS_IMAGE Debian's redis-server, dropping to the redis user like the official entrypoint
#   PG_IMAGE    Debian's PostgreSQL 15 with an entrypoint honouring POSTGRES_USER,
#               POSTGRES_PASSWORD and POSTGRES_DB
# Only CI swaps the bases: a user's build pulls the real images by the same names.

STANDINS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/standins"
STANDIN_BASE=agentsys-standin/debian:bookworm

apt_mirror() {
    # The Debian mirror this machine already uses: the URIs of the first deb822 stanza (or
    # sources.list line) that serves a plain suite (not -security), read at run time.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; suites = ""; types = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) { suites = $i }
                    if ($i ~ /^Types:/) { types = $i }
                }
                if (types ~ /deb( |$)/ && suites ~ /[ \t](bookworm|trixie|bullseye|stable)([ \t]|$)/ && uris != "") {
                    split(uris, u, /[ \t]+/); print u[1]; exit
                }
            }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk '$1 == "deb" && $3 !~ /-security|-updates|-backports/ && $2 ~ /^https?:/ && $2 ~ /debian/ {print $2; exit}' "$f")
        [[ -n $uri ]] && { echo "$uri"; return 0; }
    done
    return 1
}

standin_rootfs() {
    local mirror rootfs=$D/rootfs keyring=()
    mirror=$(apt_mirror) || { log "no Debian mirror found in the apt sources"; return 1; }
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
        && keyring=(--keyring /usr/share/keyrings/debian-archive-keyring.gpg)
    log "debootstrap minbase bookworm from $mirror"
    debootstrap --variant=minbase "${keyring[@]}" bookworm "$rootfs" "$mirror" >"$D/debootstrap.log" 2>&1 \
        || { tail -n 20 "$D/debootstrap.log" >&2; return 1; }
    # Like the official Debian images: no services start inside a build, small apt footprint.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90standin"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$DOCKER_BIN" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$STANDIN_BASE" >/dev/null
    rm -rf "$rootfs"
}

standins_build() {
    local py=$1 redis=$2 pg=$3
    standin_rootfs
    local name image
    for name in python redis postgres; do
        case $name in
            python) image=$py ;;
            redis) image=$redis ;;
            postgres) image=$pg ;;
        esac
        log "stand-in $image"
        "$DOCKER_BIN" build -q --build-arg "BASE=$STANDIN_BASE" -t "$image" "$STANDINS_DIR/$name" >/dev/null \
            || { "$DOCKER_BIN" build --build-arg "BASE=$STANDIN_BASE" -t "$image" "$STANDINS_DIR/$name" >&2; return 1; }
    done
}
