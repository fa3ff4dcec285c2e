"""``bulkorder dev`` owns what it starts: a second stack never attaches to the first's
Temporal server, and a stack whose server dies restarts it or exits non-zero."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

from bulkorder.domain.sample_items import generate_items
from tests.adversarial.report import AttackLine, report
from tests.cli.helpers import cli_env, run_cli, write_ndjson
from tests.cli.test_stack_commands import start, stop, wait_for_line
from tests.fixtures.s3 import free_port


async def wait_for_exit(process: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_second_dev_stack_on_the_same_port_refuses(tmp_path: Path) -> None:
    port = free_port()
    first_home, second_home = tmp_path / "first", tmp_path / "second"
    first = await start(["dev", "--port", str(port)], cli_env(first_home))
    try:
        await wait_for_line(first, "ready")
        second = await start(["dev", "--port", str(port)], cli_env(second_home))
        code, stderr = await wait_for_exit(second)
        assert code == 1, stderr
        assert f"port {port} is already in use by another bulkorder dev" in stderr
        assert str(first_home.resolve()) in stderr, "the message names the other stack's home"
        assert "--port" in stderr
        # Nothing of the second stack runs or was recorded: no state file, no event store.
        assert not (second_home / "dev.json").exists()
        assert not (second_home / "events.sqlite").exists()
        # The first stack still serves its own commands.
        created = await run_cli("create", f"own-{uuid.uuid4().hex[:8]}", "--customer", "acme", env=cli_env(first_home))
        assert created.code == 0, created.stderr
    finally:
        assert await stop(first) == 0
    report(AttackLine("local user", "second `bulkorder dev` on a port in use", f"refused: exit {code}, names the other home"))


async def test_a_port_held_by_a_stranger_is_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        dev = await start(["dev", "--port", str(port)], cli_env(tmp_path / "home"))
        code, stderr = await wait_for_exit(dev)
    assert code == 1 and f"port {port} is already in use by another process" in stderr
    assert not (tmp_path / "home" / "dev.json").exists()
    report(AttackLine("local user", "`bulkorder dev` on a port a stranger holds", f"refused: exit {code}"))


def server_pid(home: Path) -> int:
    return int(json.loads((home / "dev.json").read_text())["server_pid"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_killed_temporal_server_is_restarted_and_orders_still_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home)
    dev = await start(["dev", "--port", str(free_port()), "--max-restarts", "2"], env)
    try:
        await wait_for_line(dev, "ready")
        killed = server_pid(home)
        started = time.monotonic()
        os.kill(killed, signal.SIGKILL)
        await wait_for_line(dev, "restarted: temporal", timeout=90)
        took = time.monotonic() - started
        assert server_pid(home) != killed and pid_alive(server_pid(home))
        assert dev.returncode is None, "bulkorder dev stays up with its new server"

        # The restarted server and the worker that stayed up still run an order end to end.
        items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(500)))
        reference = f"restart-{uuid.uuid4().hex[:8]}"
        order_id = f"acme/{reference}"
        created = await run_cli("create", reference, "--customer", "acme", "--items", str(items), env=env)
        assert created.code == 0, created.stderr
        done = await run_cli("submit", order_id, "--wait", "--json", env=env)
        assert done.code == 0, done.stderr
        assert done.json()["status"] == "fulfilled" and done.json()["item_count"] == 500
    finally:
        if dev.returncode is None:
            assert await stop(dev) == 0
    report(AttackLine("crash", "Temporal child of `bulkorder dev` killed", f"restarted in {took:.1f} s, orders run"))


async def test_a_server_that_keeps_dying_stops_the_stack_with_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dev = await start(["dev", "--port", str(free_port()), "--max-restarts", "0"], cli_env(home))
    try:
        await wait_for_line(dev, "ready")
        killed = server_pid(home)
        os.kill(killed, signal.SIGKILL)
        code, stderr = await wait_for_exit(dev, timeout=60)
    finally:
        if dev.returncode is None:
            dev.kill()
            await dev.wait()
    assert code == 1, stderr
    assert "the Temporal dev server exited" in stderr and "--max-restarts 0" in stderr
    assert not (home / "dev.json").exists(), "no state file left pointing at a dead server"
    report(AttackLine("crash", "Temporal child killed, no restarts left", f"exit {code} with a message"))
