#!/usr/bin/env bash
# End-to-end tests of `jikji serve`: starts the real release binary on free loopback ports
# with the real models and drives it with the official `openai` Python package and raw
# HTTP (tests/server/), and the web chat page in Chromium through Playwright
# (tests/server/test_ui.py; Debian's `chromium`, which .ci/run installs, launched by path —
# Playwright's own browser download is never used). Needs the models pulled
# (scripts/test.sh does that first).
set -euo pipefail
cd "$(dirname "$0")/.."
# A distribution's own Python refuses plain `pip install` (PEP 668); retry past that.
pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
pip_install openai pytest httpx cryptography playwright jsonschema
[ -x target/release/jikji ] || cargo build --release -p jikji-cli
export JIKJI_BIN="${JIKJI_BIN:-$PWD/target/release/jikji}"
python3 -m pytest -q tests/server "$@"
