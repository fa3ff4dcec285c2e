"""Batch IDs of an import: what makes running the same import twice record it once.

The ID of batch ``k`` is a sha-256 over a seed (importer version, order ID, format, batch
size, CSV header) followed by every input byte from the start of the file to the end of
batch ``k``. So:

- the same file imported again into the same order gives the same IDs, and the order
  aggregate applies each batch ID at most once: a re-run records nothing new, a resumed
  run skips the batches already recorded;
- an input that grew at its end (a log that was appended to) keeps the IDs of its old
  batches: only the new lines are imported;
- fixing the line an import stopped at changes only the IDs from that batch on, and none
  of those was recorded (the importer never sends a batch at or after a bad one), so
  "fix line N and run the same command again" resumes exactly where it stopped.

A sampled identity (size plus first and last MiB) was rejected: fixing a line changes the
file size, which would have made every batch new and imported the first part twice.

The readable part of the ID carries the batch size and position, so that a resume with
another ``--batch-size`` (whose batches would all be new) can be detected and refused.
"""

from __future__ import annotations

import hashlib
import re

#: Prefix of every batch ID the importer writes. Bump the version to change the hashing.
ID_PREFIX = "imp1"
_ID_PATTERN = re.compile(r"^imp1\.(\d+)\.(\d+)\.[0-9a-f]{40}$")


class BatchIdentity:
    """The running hash of an input; :meth:`next_id` is called once per batch, in order."""

    def __init__(self, *, order_id: str, format: str, batch_size: int, header: bytes = b"") -> None:
        self.batch_size = batch_size
        self._hash = hashlib.sha256()
        for part in (ID_PREFIX.encode(), order_id.encode(), format.encode(), str(batch_size).encode(), header):
            self._hash.update(len(part).to_bytes(8, "little"))
            self._hash.update(part)
        self._position = 0

    def next_id(self, *chunks: bytes) -> str:
        """The ID of the next batch, whose input bytes are ``chunks``."""
        for chunk in chunks:
            self._hash.update(chunk)
        digest = self._hash.copy().hexdigest()
        batch_id = f"{ID_PREFIX}.{self.batch_size}.{self._position}.{digest[:40]}"
        self._position += 1
        return batch_id


def parse_import_id(batch_id: str) -> tuple[int, int] | None:
    """``(batch size, position)`` of an importer batch ID, ``None`` for any other ID."""
    match = _ID_PATTERN.match(batch_id)
    return (int(match.group(1)), int(match.group(2))) if match else None
