"""``driftwatch worker``: run the Faust worker (the same app as ``faust -A stream.app worker``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_parser", "run"]

# flag -> settings environment variable; flags win over the environment and the file
_FLAGS = {
    "bootstrap_servers": "DRIFTWATCH_BOOTSTRAP_SERVERS",
    "metrics_port": "DRIFTWATCH_METRICS_PORT",
    "config": "DRIFTWATCH_CONFIG",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="consume telemetry from Kafka, detect drift, emit drift events and metrics",
        description="Run the drift-detection worker. Settings come from DRIFTWATCH_* "
        "environment variables and/or a TOML file (see README, Configuration).",
    )
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", help="Kafka brokers")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="Prometheus metrics port")
    p.add_argument(
        "--loglevel", default=None, choices=["debug", "info", "warning", "error"], help="log level"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for attr, env in _FLAGS.items():
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[env] = str(value)
    from stream.settings import load_settings
    from stream.worker.broker_wait import BrokerRefusedError, wait_for_broker

    # settings errors exit 2 before anything connects; then wait for the broker with backoff
    try:
        retries = wait_for_broker(load_settings())
    except BrokerRefusedError:
        # reachable but refused (logged, redacted): the worker's own clients report it as
        # they always did, with their redacted protocol logs at --loglevel debug
        retries = 0
    from faust import Worker

    from stream import app

    root = app.worker()
    root.metrics.broker_start_retries.inc(retries)
    worker = Worker(root.app, loglevel=(args.loglevel or root.settings.log_level).upper())
    worker.execute_from_commandline()  # returns when the worker stops (SIGINT/SIGTERM)
    return 0
