#!/usr/bin/env bash
# The README's quick start: `bash dev.sh main` runs the main job, `bash dev.sh test` runs the tests.
# Either one creates the project's virtual environment (.venv) when it is missing and installs the
# package with everything it needs; later runs reinstall only when the packaging files change.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv

ensure_env() {
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    # A stamp named after the packaging files' checksum: edits to them trigger a reinstall.
    local stamp
    stamp="$venv/.installed-$(cat setup.cfg pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
        rm -f "$venv"/.installed-*
        touch "$stamp"
    fi
}

case "${1:-}" in
    main) shift; ensure_env; exec "$venv/bin/python" examples/compare_devices.py "$@" ;;
    test) shift; ensure_env; exec "$venv/bin/python" -m pytest "$@" ;;
    *) echo "usage: bash dev.sh main|test [arguments passed on]" >&2; exit 2 ;;
esac
