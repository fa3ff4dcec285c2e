"""An encoding process (``python -m bulkorder.importer.encoder_process --shared-fd N``):
reads ``(function, argument)`` messages on stdin, answers ``(ok, result or error)`` on
stdout, until stdin closes; large ``bytes`` both ways go through the memory file on
descriptor ``N`` (:mod:`bulkorder.importer.shared_buffer`). See :mod:`bulkorder.importer.encoders`."""

from __future__ import annotations

import argparse
import gc
import sys

from bulkorder.importer.shared_buffer import (
    EndOfMessages,
    SharedBuffer,
    UnreadableMessage,
    UnsendableMessage,
    read_message,
    write_message,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bulkorder.importer.encoder_process")
    parser.add_argument("--shared-fd", type=int, default=None, help="the memory file shared with the importer")
    args = parser.parse_args()
    shared = SharedBuffer.attach(args.shared_fd) if args.shared_fd is not None else None
    # Decoding a batch allocates hundreds of thousands of containers, and the cyclic
    # collector would scan them over and over (about a third of the stage's time, measured
    # here). Nothing in this loop makes reference cycles, so reference counting frees all.
    gc.disable()
    requests = sys.stdin.buffer
    replies = sys.stdout.buffer
    # Anything else printing to stdout would corrupt the replies.
    sys.stdout = sys.stderr
    while True:
        try:
            function, argument = read_message(requests, shared)
        except EndOfMessages as exc:
            if exc.clean:
                return  # the importer closed the pipe: done
            print(f"bulkorder encoding process: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except UnreadableMessage as exc:  # a task whose function is not importable here, say
            write_message(replies, (False, RuntimeError(f"the task cannot be loaded here: {exc}")), shared)
            continue
        try:
            reply: tuple[bool, object] = (True, function(argument))
        except Exception as exc:  # noqa: BLE001 - sent back to the importer, raised there
            reply = (False, exc)
        try:
            write_message(replies, reply, shared)
        except UnsendableMessage as exc:  # an answer (or an exception) that does not pickle
            write_message(replies, (False, RuntimeError(f"the answer cannot be sent back: {exc}")), shared)


if __name__ == "__main__":
    main()
