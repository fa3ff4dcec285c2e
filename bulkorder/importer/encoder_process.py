"""An encoding process (``python -m bulkorder.importer.encoder_process``): reads
``(function, argument)`` messages on stdin, answers ``(ok, result or error)`` on stdout,
until stdin closes. See :mod:`bulkorder.importer.encoders`."""

from __future__ import annotations

import gc
import sys

from bulkorder.importer.encoders import _STOP, read_message, write_message


def main() -> None:
    # Decoding a batch allocates hundreds of thousands of containers, and the cyclic
    # collector would scan them over and over (about a third of the stage's time, measured
    # here). Nothing in this loop makes reference cycles, so reference counting frees all.
    gc.disable()
    requests = sys.stdin.buffer
    replies = sys.stdout.buffer
    # Anything else printing to stdout would corrupt the replies.
    sys.stdout = sys.stderr
    while True:
        message = read_message(requests)
        if message is _STOP:
            return
        function, argument = message
        try:
            reply = (True, function(argument))
        except Exception as exc:  # noqa: BLE001 - sent back to the importer, raised there
            try:
                reply = (False, exc)
                write_message(replies, reply)
                continue
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled
                reply = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
        write_message(replies, reply)


if __name__ == "__main__":
    main()
