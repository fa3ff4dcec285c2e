"""Fixtures of the fault-injection suite, and the table of its one-line reports.

``make faults`` runs these cases at full scale (``BULKORDER_FAULT_SCALE=full``); ``make
test`` runs them reduced. The table of ``FAULT`` lines is printed at the end of the run.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.items import validate_item_dicts
from domain.sample_items import generate_items
from storage.batches import BatchStore
from storage.folder_store import FolderBlobStore
from tests.faults.harness import REPORTED, SCALE, EncodedBatch


@pytest.fixture(scope="session")
def encoded_batches(tmp_path_factory: pytest.TempPathFactory) -> list[EncodedBatch]:
    """The import's items (``SCALE.import_items`` of them), validated and encoded once."""
    encoder = BatchStore(FolderBlobStore(tmp_path_factory.mktemp("encoder")))
    size = SCALE.import_batch_items
    batches = []
    for start in range(0, SCALE.import_items, size):
        items = validate_item_dicts(list(generate_items(min(size, SCALE.import_items - start), start=start)))
        ref, data = encoder.encode(items, batch_id=f"template-{start // size:06d}")
        batches.append(EncodedBatch(ref, data))
    return batches


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORTED:
        return
    terminalreporter.section(f"fault injection ({SCALE.name} scale)")
    for line in REPORTED:
        terminalreporter.write_line(str(line))
