#!/usr/bin/env bash
# What the headless-browser check of the site needs (tests/test_site.py, tools/ci_browser_check.py):
#   * Debian's Chromium (and a font), from apt;
#   * Playwright for Python, which drives it: the PyPI wheel carries its driver, so no
#     `playwright install` (no browser download); version pinned, its events change between
#     releases;
#   * local copies of the scripts asv's pages load from CDNs, from the npm registry
#     (`attnperf asv fetch-assets` -> .cache/asv-www), so asv's graphs render offline.
# Idempotent: a few hundred milliseconds when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "ok installed" \
  || need+=(fonts-dejavu-core)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
playwright_version="1.65.2"
if ! "$py" -m pip show playwright 2>/dev/null | grep -qx "Version: $playwright_version"; then
  "$py" -m pip install -q "playwright==$playwright_version"
fi
"$py" -m attnperf asv fetch-assets "${ATTNPERF_ASV_ASSETS:-.cache/asv-www}"
