"""Run the ``bulkorder`` command line as a user would: a separate process, real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tests.fixtures.orders import TEST_IDENTITY_SECRET, TEST_KEYRING, TEST_SEAL_SECRET


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout.strip().splitlines()[-1])


def cli_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: nothing from the developer's TEMPORAL_* or BULKORDER_* leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "BULKORDER_", "PERSISTENCE_", "SQLITE_", "POSTGRES_"))}
    env["BULKORDER_HOME"] = str(home)
    # The test stacks' deployment secret: refs the CLI seals are believed by their workers.
    env["BULKORDER_REF_SECRET"] = TEST_SEAL_SECRET
    env["BULKORDER_IDENTITY_SECRET"] = TEST_IDENTITY_SECRET
    # The test stacks' keyring: what they encrypt, the CLI reads (tests.fixtures.orders).
    env["BULKORDER_KEYRING"] = str(TEST_KEYRING)
    env.update(extra or {})
    return env


async def run_cli(*args: str, env: Mapping[str, str], timeout: float = 180) -> CliResult:
    """Run ``bulkorder ARGS`` in a child process without blocking the event loop (the
    test's own worker runs on it and must keep serving the command's workflow)."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bulkorder.cli", *args],
        env=dict(env), capture_output=True, text=True, timeout=timeout,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def write_ndjson(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def stack_env(stack_task_queue: str, temporal_address: str, tmp_path: Path, event_store_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a CLI process sharing a test's worker (its task queue), blobs
    (``tmp_path/blobs``) and event store."""
    return cli_env(
        tmp_path / "home",
        {
            **event_store_env,
            "TEMPORAL_ADDRESS": temporal_address,
            "BULKORDER_BLOB_DIR": str(tmp_path / "blobs"),
            "BULKORDER_TASK_QUEUE": stack_task_queue,
        },
    )
