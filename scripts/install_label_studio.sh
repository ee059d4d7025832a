#!/usr/bin/env bash
# Installs a real Label Studio server, for the end-to-end tests, into its OWN virtual environment
# (label-studio pins its own label-studio-sdk, Django and numpy, so it cannot share .venv).
# Idempotent: pip runs only when the label-studio binary is missing or the installed version differs.
# The venv lives outside the repository by default so that clean clones reuse it.
#
# Environment: LS_VENV (default ~/.cache/empathic/label-studio-<version>), LS_VERSION (default
# 1.23.2), PYTHON (default python3).
# Prints exactly one line on stdout: the venv path (so `LS_VENV="$(scripts/install_label_studio.sh)"`
# works); progress goes to stderr.
#
# Never run `label-studio --version` to check the version: it starts a server instead of exiting.
set -euo pipefail

LS_VERSION="${LS_VERSION:-1.23.2}"
LS_VENV="${LS_VENV:-$HOME/.cache/empathic/label-studio-$LS_VERSION}"
PYTHON="${PYTHON:-python3}"

installed_version() {
    [[ -x "$LS_VENV/bin/label-studio" && -x "$LS_VENV/bin/python" ]] || return 0
    "$LS_VENV/bin/python" -m pip show label-studio 2>/dev/null | sed -n 's/^Version: //p'
}

mkdir -p "$(dirname "$LS_VENV")"
# Two concurrent runs (e.g. parallel CI jobs on one machine) must not install into the same venv.
exec 9>"$LS_VENV.lock"
flock 9

current="$(installed_version)"
if [[ "$current" != "$LS_VERSION" ]]; then
    start=$SECONDS
    if [[ ! -x "$LS_VENV/bin/python" ]] || ! "$LS_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$LS_VENV"
        "$PYTHON" -m venv "$LS_VENV"
    fi
    echo "install_label_studio: installing label-studio==$LS_VERSION into $LS_VENV" \
        "(found: ${current:-none}; takes 1-3 minutes, ~1 GB)" >&2
    "$LS_VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$LS_VERSION" >&2
    current="$(installed_version)"
    if [[ "$current" != "$LS_VERSION" ]]; then
        echo "install_label_studio: label-studio $LS_VERSION did not install (found: ${current:-none})" >&2
        exit 1
    fi
    echo "install_label_studio: done in $((SECONDS - start)) s" >&2
fi
echo "$LS_VENV"
