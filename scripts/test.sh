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
echo "== pytest"
exec .venv/bin/python -m pytest --durations=25 "$@"
