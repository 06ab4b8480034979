#!/usr/bin/env bash
# The main job in one command: install, start a local Kafka broker, the driftwatch worker and
# the simulator with a drift injected into agent-1's response latency after DRIFT_AT seconds,
# then show drift events as they arrive. Ctrl-C stops everything this script started.
#
# Environment: DRIFT_AT (seconds, default 60), RATE (events/s, default 300),
#              DRIFTWATCH_METRICS_PORT (default 9464).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

drift_at=${DRIFT_AT:-60}
rate=${RATE:-300}
metrics_port=${DRIFTWATCH_METRICS_PORT:-9464}
state=var/quickstart
mkdir -p "${state}"

scripts/bootstrap.sh
echo "quickstart: fetching Kafka 3.9.1 (first run only)"
.venv/bin/python scripts/kafka_local.py fetch
bootstrap=$(.venv/bin/python scripts/kafka_local.py start --dir "${state}/kafka" | tail -n 1)
echo "quickstart: Kafka broker on ${bootstrap} (log: ${state}/kafka/broker.log)"

pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "quickstart: stopping"
    for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
    .venv/bin/python scripts/kafka_local.py stop --dir "${state}/kafka" >/dev/null || true
    echo "quickstart: stopped (logs in ${state}/)"
}
trap cleanup EXIT INT TERM

export DRIFTWATCH_BOOTSTRAP_SERVERS=${bootstrap}
export DRIFTWATCH_METRICS_PORT=${metrics_port}
export DRIFTWATCH_APP_ID=driftwatch-quickstart
export DRIFTWATCH_DATA_DIR=${state}/worker
export DRIFTWATCH_WINDOW_SIZE=${DRIFTWATCH_WINDOW_SIZE:-200}
export DRIFTWATCH_REFERENCE_SIZE=${DRIFTWATCH_REFERENCE_SIZE:-1000}
# Fleet budget: about one false alarm an hour across all agents and features at this rate.
export DRIFTWATCH_FLEET_FALSE_ALARMS_PER_DAY=${DRIFTWATCH_FLEET_FALSE_ALARMS_PER_DAY:-24}
export DRIFTWATCH_FLEET_EVENTS_PER_SECOND=${DRIFTWATCH_FLEET_EVENTS_PER_SECOND:-${rate}}
.venv/bin/driftwatch worker >"${state}/worker.log" 2>&1 &
pids+=($!)
.venv/bin/driftwatch simulate --bootstrap-servers "${bootstrap}" --rate "${rate}" --agents 5 \
    --drift-agent agent-1 --drift-feature response_latency_ms --drift-kind shift \
    --drift-magnitude 0.3 --drift-at "${drift_at}" --invalid-every 1000 \
    >"${state}/simulate.log" 2>&1 &
pids+=($!)

cat <<MSG
quickstart: worker and simulator running (logs: ${state}/worker.log, ${state}/simulate.log)
quickstart: metrics at http://localhost:${metrics_port}/metrics
quickstart: 5 agents at ${rate} events/s; agent-1's response_latency_ms shifts +30% after ${drift_at}s
quickstart: each (agent, feature) first learns its reference from ${DRIFTWATCH_REFERENCE_SIZE} events
quickstart: false-alarm budget: ${DRIFTWATCH_FLEET_FALSE_ALARMS_PER_DAY} a day across the fleet
quickstart: drift events appear below as they arrive; Ctrl-C stops everything
MSG
.venv/bin/driftwatch tail --bootstrap-servers "${bootstrap}" --from-beginning &
pids+=($!)
wait "${pids[-1]}"
