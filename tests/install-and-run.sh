#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite.
# Usage: bash tests/install-and-run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
# Browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
# Without root or sudo, point CALLMIP_CHROMIUM at any Chromium/Chrome binary you have:
#   CALLMIP_CHROMIUM=/path/to/chromium bash tests/install-and-run.sh
# (with neither, the browser tests are skipped and say so).
if [ -n "${CALLMIP_CHROMIUM:-}" ]; then
  [ -x "$CALLMIP_CHROMIUM" ] || { echo "CALLMIP_CHROMIUM=$CALLMIP_CHROMIUM is not executable" >&2; exit 2; }
elif [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  elif sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: no chromium and no sudo: the browser tests will be skipped." >&2
    echo "      Set CALLMIP_CHROMIUM=/path/to/chromium to run them." >&2
  fi
fi
exec python3 -m pytest -p no:cacheprovider "$@"
