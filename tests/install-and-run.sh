#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite.
# Usage: bash tests/install-and-run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
# Browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
exec python3 -m pytest -p no:cacheprovider "$@"
