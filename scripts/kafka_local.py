#!/usr/bin/env python3
"""Run a single-node Apache Kafka broker (KRaft) from Maven jars: the command line.

The broker itself is :mod:`tests.support.kafka_local` (standard library only, so this works
before the project is installed)::

    python scripts/kafka_local.py fetch                  # resolve jars into the cache
    python scripts/kafka_local.py start [--dir DIR] [--port N] [--keep]
    python scripts/kafka_local.py status [--dir DIR]     # prints bootstrap, exit 1 if down
    python scripts/kafka_local.py stop [--dir DIR]

Environment:
    DRIFTWATCH_KAFKA_CACHE  directory holding the broker jars
                            (default ``~/.cache/driftwatch/kafka-3.9.1/libs``)
    DRIFTWATCH_KAFKA_DIR    default state directory (default ``<repo>/var/kafka``)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.kafka_local import main

if __name__ == "__main__":
    sys.exit(main())
