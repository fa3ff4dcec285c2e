"""The environment every process of a benchmark stack shares (bench_fleet, bench_create):
one Temporal server, one bucket on one S3 endpoint, one PostgreSQL schema for the events."""

from __future__ import annotations

import os
from pathlib import Path

from tests.fixtures.postgres import CONFIGURED as POSTGRES

#: The ref secret of every benchmark stack's processes (importers, workers, probes).
SECRET = "fleet-bench-ref-secret-0123456789abcdef"


def stack_env(address: str, workdir: Path, schema: str, bucket: str, endpoint: str, *, queue: str) -> dict[str, str]:
    """The environment of every process of a benchmark stack: Temporal at ``address``, blobs
    in ``bucket`` at ``endpoint``, events in PostgreSQL schema ``schema``."""
    return dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        BULKORDER_HOME=str(workdir / f"home-{schema}"),
        BULKORDER_TASK_QUEUE=f"{queue}-{schema}",
        BULKORDER_S3_BUCKET=bucket,
        BULKORDER_S3_ENDPOINT_URL=endpoint,
        BULKORDER_S3_REGION="us-east-1",
        BULKORDER_REF_SECRET=SECRET,
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=POSTGRES.dbname,
        POSTGRES_HOST=POSTGRES.host,
        POSTGRES_PORT=str(POSTGRES.port),
        POSTGRES_USER=POSTGRES.user,
        POSTGRES_PASSWORD="",
        POSTGRES_SCHEMA=schema,
    )


#: As deployed (docs/operations.md "Sizing"): batch importers below the services' CPU priority,
#: and Temporal's persistence on storage of its own, not the disk the importers write to. The
#: dev server keeps its state in one SQLite file; in memory it writes to no shared disk.
DEPLOYED_IMPORTER_NICE = 19


def deployed_temporal_dir() -> Path | None:
    """/dev/shm where it can be written (Linux), else ``None``: the workdir, on disk."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None
