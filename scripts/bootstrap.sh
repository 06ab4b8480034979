#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install driftwatch with its test tools into it, at the
# exact versions and hashes of requirements-test.lock (regenerate it with scripts/lock.sh).
# Idempotent and quick when nothing changed. Used by scripts/test.sh and scripts/quickstart.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-}
if [[ -z ${python} ]]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "${candidate}" >/dev/null 2>&1 &&
            "${candidate}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python=${candidate}
            break
        fi
    done
fi
if [[ -z ${python} ]]; then
    echo "bootstrap: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "bootstrap: creating .venv with $(${python} --version)"
    "${python}" -m venv .venv
fi
stamp=.venv/.driftwatch-installed
lock=requirements-test.lock
if [[ ! -f ${stamp} || pyproject.toml -nt ${stamp} || ${lock} -nt ${stamp} ]]; then
    echo "bootstrap: installing driftwatch and its test tools (${lock}) into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r "${lock}"
    .venv/bin/python -m pip install --quiet --no-deps -e .
    .venv/bin/python -m pip check
    touch "${stamp}"
fi
