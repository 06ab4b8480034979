#!/usr/bin/env bash
# Run every test: lint, types, unit, doctests, deployment checks and the integration tests
# against a real Kafka 3.9.1 broker and a real Prometheus, both started by the tests.
# Installs what it needs first (Python packages into .venv, Debian's prometheus and
# docker-compose, the Kafka jars from Maven Central). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
bash scripts/install-system-deps.sh
.venv/bin/python scripts/kafka_local.py fetch

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
# The integration tests spend most of their time waiting on the broker, the workers and the
# telemetry they produce at a fixed rate, so they run beside the unit tests in a second pytest
# process; DRIFTWATCH_TEST_SPLIT=0, or a marker expression of your own (-m), runs one process.
# A part that selects no test (exit 5, e.g. the integration part of `scripts/test.sh
# tests/detectors`) counts as passed only when the other part ran tests.
echo "== pytest"
pytest=(.venv/bin/python -m pytest --durations=25)
if [[ ${DRIFTWATCH_TEST_SPLIT:-1} == 0 || " $* " == *" -m "* ]]; then
    exec "${pytest[@]}" "$@"
fi
"${pytest[@]}" -m integration "$@" 2>&1 | sed -u 's/^/[integration] /' &
integration=$!
unit_status=0
"${pytest[@]}" -m "not integration" "$@" 2>&1 | sed -u 's/^/[unit] /' || unit_status=$?
integration_status=0
wait "${integration}" || integration_status=$?
echo "pytest: unit tests exit ${unit_status}, integration tests exit ${integration_status}"
if [[ ${unit_status} -eq 5 && ${integration_status} -eq 5 ]]; then
    exit 5
fi
for part_status in "${unit_status}" "${integration_status}"; do
    if [[ ${part_status} -ne 0 && ${part_status} -ne 5 ]]; then
        exit "${part_status}"
    fi
done
exit 0
