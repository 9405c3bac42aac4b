#!/usr/bin/env bash
# What `make test-compose` needs beyond `make setup`: a Docker engine (Debian's docker.io,
# which brings dockerd, containerd, runc and a 20.10 client) and debootstrap (base-image
# stand-ins, CONTAINERS.md). Installed with apt-get when missing and we are root on
# Debian/Ubuntu; otherwise named. No service is started: test-compose runs its own dockerd.
set -euo pipefail

missing=()
command -v dockerd >/dev/null || [[ -x /usr/sbin/dockerd ]] || missing+=(docker.io)
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
command -v iptables >/dev/null || [[ -x /usr/sbin/iptables ]] || missing+=(iptables)
command -v curl >/dev/null || missing+=(curl)
((${#missing[@]})) || exit 0

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "compose-deps: please install: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "compose-deps: installing ${missing[*]} with apt-get"
# Never let the package start a system dockerd (no init system here; ours runs per test).
added_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
fi
trap '[[ -z $added_policy ]] || rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "compose-deps: done"
