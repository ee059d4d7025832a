#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine (or an existing one: every step is idempotent).
#   scripts/setup.sh          system packages + .venv with the project
#   scripts/setup.sh --test   the same plus the test dependencies
# Environment: VENV (default .venv), PYTHON (default python3), SKIP_APT=1 to leave system packages alone.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

# ffmpeg (system FFmpeg libraries for torchcodec, and the CLI for users), espeak-ng (test speech),
# redis-server (cache and job queue); with --test also chromium (the browser test drives
# /usr/bin/chromium through Playwright, which downloads no browser). Installed only when missing.
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v redis-server >/dev/null || need+=(redis-server)
[[ -n "$extras" && ! -x /usr/bin/chromium ]] && need+=(chromium)
if [[ ${#need[@]} -gt 0 && "${SKIP_APT:-0}" != "1" ]]; then
    sudo_cmd=""
    [[ "$(id -u)" != "0" ]] && sudo_cmd="sudo"
    echo "setup: installing system packages: ${need[*]}" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python >= 3.11 is needed, {sys.executable} is {sys.version.split()[0]}")
PY

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".${extras}"
echo "setup: ready ($VENV/bin/empathic)" >&2
