"""Record batches built in worker processes: from a folder store the workers fetch the
batches themselves, from S3 the main process fetches and hands the bytes over; either way
the items are those of the threads, and a damaged batch stops the run naming the batch."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bulkorder.analysis.arrow_items import DecodingProcesses, fetches_in_workers, item_record_batches
from bulkorder.domain.refs import BatchRef
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.envelope import is_envelope
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.errors import BlobIntegrityError
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.analysts import AnalystStore, write_order


def _rows(batches: list[pa.RecordBatch]) -> list[dict[str, object]]:
    return [row for batch in batches for row in batch.to_pylist()]


def test_workers_fetch_from_a_folder_store_and_build_the_same_items(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "proc-1", [300, 1, 250, 120, 80, 400, 5])
    assert fetches_in_workers(analyst_store.batches)
    in_threads = list(item_record_batches(analyst_store.batches, written.refs))
    in_processes = list(item_record_batches(analyst_store.batches, written.refs, processes=True, window=3))
    assert [batch.num_rows for batch in in_processes] == [300, 1, 250, 120, 80, 400, 5]
    assert _rows(in_processes) == _rows(in_threads)
    assert len(_rows(in_processes)) == len(written.items)


def test_with_provenance_each_batch_keeps_its_own(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "proc-2", [10, 20, 30])
    provenance = [{"position": 2 + index, "order_id": "proc-2", "batch_id": ref.batch_id,
                   "recorded_at": pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()}
                  for index, ref in enumerate(written.refs)]
    batches = list(item_record_batches(analyst_store.batches, written.refs, provenance=provenance, processes=True))
    assert [set(batch.column("batch_id").to_pylist()) for batch in batches] == [{ref.batch_id} for ref in written.refs]
    assert [batch.column("position")[0].as_py() for batch in batches] == [2, 3, 4]


def test_a_corrupt_batch_read_in_a_worker_stops_the_run_naming_it(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "proc-3", [50, 50, 50])
    path = analyst_store.batches.blobs.path_for(written.refs[1].key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BlobIntegrityError, match=written.refs[1].batch_id):
        list(item_record_batches(analyst_store.batches, written.refs, processes=True))


def test_from_s3_the_main_process_fetches_for_the_workers(
    analyst_store: AnalystStore, s3_endpoint: str, s3_bucket: str
) -> None:
    s3 = BatchStore(S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1"))
    on_s3 = AnalystStore(analyst_store.config, s3, analyst_store.orders)
    written = write_order(on_s3, "proc-4", [200, 3, 150])
    assert not fetches_in_workers(s3), "an S3 client's connections do not survive a fork"
    in_threads = list(item_record_batches(s3, written.refs))
    in_processes = list(item_record_batches(s3, written.refs, processes=True))
    assert _rows(in_processes) == _rows(in_threads)
    assert [batch.num_rows for batch in in_processes] == [200, 3, 150]


def test_workers_read_an_encrypted_folder_store_with_the_key_unwrapped_before_the_fork(
    analyst_store: AnalystStore, tmp_path: Path
) -> None:
    """As deployed (a local keyring): the main process reads the first batch, which puts
    the order's data key in the cache the workers inherit; the items are the threads'."""
    settings = Settings.from_env({"BULKORDER_HOME": str(tmp_path / "home")})
    sealed = BatchStore(FolderBlobStore(tmp_path / "sealed-blobs"), protection=settings.blob_protection())
    on_sealed = AnalystStore(analyst_store.config, sealed, analyst_store.orders)
    written = write_order(on_sealed, "proc-5", [120, 7, 300])
    assert all(is_envelope(sealed.blobs.get(ref.key)) for ref in written.refs)  # encrypted at rest
    assert fetches_in_workers(sealed)
    in_threads = list(item_record_batches(sealed, written.refs))
    # Every read, by this process and by the forked workers (which inherit the patched
    # store), one line each in a file they all append to.
    reads = tmp_path / "reads.txt"
    fetch = sealed.fetch

    def counted(ref: BatchRef, **kwargs: Any) -> bytes:
        with open(reads, "a") as log:
            log.write(f"{os.getpid()} {ref.batch_id}\n")
        return fetch(ref, **kwargs)

    sealed.fetch = counted  # type: ignore[method-assign]
    in_processes = list(item_record_batches(sealed, written.refs, processes=True, window=2))
    assert _rows(in_processes) == _rows(in_threads) and len(_rows(in_processes)) == 427
    lines = [line.split() for line in reads.read_text().splitlines()]
    assert sorted(batch for _, batch in lines) == sorted(ref.batch_id for ref in written.refs)  # each read once
    assert [batch for pid, batch in lines if pid == str(os.getpid())] == [written.refs[0].batch_id]  # the first here


def test_ctrl_c_is_the_main_processes_to_handle_not_the_workers(analyst_store: AnalystStore) -> None:
    """SIGINT reaches the whole process group; the workers ignore it (the main process
    stops the pool), so none dies printing a traceback and breaking the pool."""
    written = write_order(analyst_store, "proc-sigint", [50, 60])
    with DecodingProcesses(analyst_store.batches, 2) as decoders:
        assert decoders.pool is not None
        workers = list(decoders.pool._processes.values())
        for worker in workers:
            os.kill(worker.pid, signal.SIGINT)
        # A worker that took the signal would end: every one answers instead.
        batches = list(item_record_batches(analyst_store.batches, written.refs, decoders=decoders))
        assert all(worker.is_alive() for worker in workers)
    assert sum(batch.num_rows for batch in batches) == 110
