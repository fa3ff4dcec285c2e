"""The ``bulkorder`` command line. Each command lives in a module of :mod:`bulkorder.commands`.

Exit codes: 0 done, 1 refused or failed (order exists, order closed, fulfillment failed,
server unreachable; ``stuck``: some orders are stuck), 2 bad input (an invalid item, ID,
ref, file, duration or setting), 3 a ``--timeout`` passed before the order ended
(``submit``/``retry --wait``, ``import``). Errors go to stderr as one line
that names what is wrong and where.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Sequence

from bulkorder.commands import command_modules
from bulkorder.errors import exit_code_for, message_for
from bulkorder.settings import Settings
from bulkorder.tracing import flush_traces


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkorder",
        description="Orders too big for a workflow engine: items in the blob store, references in Temporal.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and Temporal/worker messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env()
        try:
            return int(asyncio.run(args.handler(args, settings)) or 0)
        finally:
            flush_traces()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one readable line
        code = exit_code_for(exc)
        if code is None:
            raise
        print(f"bulkorder {args.command}: error: {message_for(exc)}", file=sys.stderr)
        return code


def run() -> None:
    """Console-script entry point: ``main()``, then leave without interpreter teardown.

    temporalio's Rust core keeps threads that can call into Python while CPython
    finalizes, which aborts a finished process ("PyGILState_Release: thread state must
    be current", temporalio/sdk-python#300) and turns a success into exit code 134.
    Everything the command wrote is flushed and its stores are closed by then, so exiting
    directly is safe.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    run()
