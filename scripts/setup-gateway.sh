#!/usr/bin/env bash
# The dashboard's JavaScript, from the npm registry at set-up time (never a CDN at run time).
#   services/gateway/package.json pins exact versions; npm installs them with no lock file
#   (lock files embed download URLs), and the files the page loads are copied into the
#   package's git-ignored static/vendor/ folder, which the gateway serves from its own origin.
set -euo pipefail
cd "$(dirname "$0")/../services/gateway"
VENDOR=gateway/static/vendor
want=$(sed -n 's/.*"uplot": *"\([^"]*\)".*/\1/p' package.json)

if [[ -f $VENDOR/uplot.version && $(cat "$VENDOR/uplot.version") == "$want" ]]; then
    echo "setup-gateway: uPlot $want already in $VENDOR"
    exit 0
fi
if ! command -v npm >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup-gateway: installing npm with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends npm >/dev/null
    else
        echo "setup-gateway: please install npm (Debian/Ubuntu: sudo apt-get install npm)" >&2
        exit 1
    fi
fi
npm install --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=error
mkdir -p "$VENDOR"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$VENDOR"/
cp node_modules/uplot/LICENSE "$VENDOR"/uPlot.LICENSE
echo "$want" > "$VENDOR/uplot.version"
echo "setup-gateway: uPlot $want in services/gateway/$VENDOR"
