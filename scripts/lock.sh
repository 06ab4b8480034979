#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (exact versions and hashes, every platform,
# Python 3.11 and newer):
#   requirements.lock       the runtime dependencies (Dockerfile)
#   requirements-test.lock  runtime plus the test tools (scripts/bootstrap.sh)
#
#   scripts/lock.sh            # re-resolve to the newest versions pyproject.toml allows
#   UV=/path/to/uv scripts/lock.sh
#
# Uses uv (from PyPI, installed into a throwaway virtualenv unless UV is set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

uv=${UV:-}
if [[ -z ${uv} ]]; then
    tools=$(mktemp -d)
    trap 'rm -rf "${tools}"' EXIT
    python3 -m venv "${tools}"
    "${tools}/bin/python" -m pip install --quiet "uv==0.13.9"
    uv=${tools}/bin/uv
fi

common=(--universal --python-version 3.11 --generate-hashes --quiet
    --custom-compile-command scripts/lock.sh)
"${uv}" pip compile "${common[@]}" pyproject.toml -o requirements.lock
"${uv}" pip compile "${common[@]}" --extra test pyproject.toml -o requirements-test.lock
echo "lock: wrote requirements.lock and requirements-test.lock"
