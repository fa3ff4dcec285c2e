"""``--skip-invalid FILE``: every refused line, with its reason, one JSON object a line.

Each entry names the batch its line belongs to. The file is appended to, and a batch
whose lines are already in it is not written again, so a resumed import (which may redo
a batch whose lines it wrote just before being killed) lists each refused line once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from bulkorder.importer.stage import Problem


class RejectsFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._written_batches = self._batches_already_listed()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.count = 0

    def _batches_already_listed(self) -> set[str]:
        """Batch IDs in an existing file; a last line cut short by a crash is dropped."""
        batches: set[str] = set()
        try:
            handle = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return batches
        with handle:
            good_end = 0
            for line in handle:
                try:
                    entry = json.loads(line)
                    batches.add(str(entry["batch_id"]))
                except (ValueError, KeyError, TypeError):
                    if not line.endswith(b"\n"):
                        break  # a partial last line: cut it off below
                good_end += len(line)
        if good_end < os.path.getsize(self.path):
            os.truncate(self.path, good_end)
        return batches

    def write(self, source: str, batch_id: str, problems: Sequence[Problem]) -> None:
        self.count += len(problems)
        if not problems or batch_id in self._written_batches:
            return
        self._written_batches.add(batch_id)
        # One write per batch: a kill leaves whole batches in the file, or a cut last line.
        self._file.write(
            "".join(
                json.dumps(
                    {
                        "file": source,
                        "line": problem.line,
                        "field": problem.field,
                        "reason": problem.reason,
                        "batch_id": batch_id,
                        "record": problem.record,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for problem in problems
            )
        )
        self._file.flush()

    def close(self) -> None:
        self._file.close()
