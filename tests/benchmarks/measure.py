"""Measuring benchmark processes: the machine, peak RSS and CPU time of a process tree,
the history sizes of a workflow's runs (benchmark code, not product code)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistoryEventFilterType


@dataclass
class Result:
    name: str
    items: int
    seconds: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()
    )
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}"


class PeakRss:
    """Samples VmHWM of a process and its children while it runs (the encoding processes
    of the importer are its children); ``os.wait4`` gives the final figure for the tree."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.by_pid: dict[int, int] = {}
        self.cpu_by_pid: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in [self.pid, *self._children()]:
                hwm = _vm_hwm_kb(pid)
                if hwm:
                    self.by_pid[pid] = max(self.by_pid.get(pid, 0), hwm)
                cpu = _cpu_seconds(pid)
                if cpu:
                    self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0.0), cpu)

    def cpu_split(self) -> tuple[float, float]:
        """(CPU seconds of the process itself, of all its children), as last sampled."""
        own = self.cpu_by_pid.get(self.pid, 0.0)
        return own, sum(cpu for pid, cpu in self.cpu_by_pid.items() if pid != self.pid)

    def _children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def stop(self) -> tuple[int, int]:
        """(peak RSS of the process itself, largest peak of its children), in KiB."""
        self._stop.set()
        self._thread.join()
        own = self.by_pid.get(self.pid, 0)
        children = max((kb for pid, kb in self.by_pid.items() if pid != self.pid), default=0)
        return own, children


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if marker in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before printing {marker!r}")
    raise RuntimeError(f"{process.args} did not print {marker!r} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[str]) -> tuple[int, float]:
    """SIGINT, then the peak RSS (KiB) and CPU seconds the kernel reports once it exits."""
    process.send_signal(signal.SIGINT)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_maxrss, usage.ru_utime + usage.ru_stime


async def run_histories(client: Client, workflow_id: str) -> list[tuple[int, int, str]]:
    """(events, bytes, status) of every run of a workflow, following continue-as-new."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
    runs = []
    while run_id:
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id, run_id=run_id)
        info = (await handle.describe()).raw_description.workflow_execution_info
        runs.append((info.history_length, info.history_size_bytes, str(info.status)))
        run_id = None
        async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None
    return runs


def listening_pid(endpoint: str) -> int:
    """The process listening at ``endpoint`` (``http://127.0.0.1:PORT``), found by its socket."""
    port = int(endpoint.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(entry.name)
    raise RuntimeError(f"no process listens at {endpoint}")
