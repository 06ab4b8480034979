"""The ``driftwatch`` command line.

Each subcommand lives in its own module, which provides ``add_parser(subparsers)`` and a
``run(args) -> int`` function; this module only wires them together.

Exit codes: 0 success (for ``compare``: no drift), 1 drift found, 2 usage or input error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from stream.exceptions import DriftwatchError
from stream.ingest import cli as ingest
from stream.tools import compare, rebaseline, replay, simulate, tail
from stream.worker import command as worker

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwatch",
        description="Real-time drift detection for AI-agent telemetry on Kafka.",
        epilog="Exit codes: 0 success (compare: no drift), 1 drift found, 2 usage or input "
        "error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Subcommands register themselves here (one module each).
    # -- subcommands --
    rebaseline.add_parser(sub)
    compare.add_parser(sub)
    worker.add_parser(sub)
    simulate.add_parser(sub)
    replay.add_parser(sub)
    tail.add_parser(sub)
    ingest.add_parser(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("driftwatch")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DriftwatchError as exc:
        print(f"driftwatch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
