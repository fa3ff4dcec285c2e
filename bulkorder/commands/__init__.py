"""CLI commands, one module per group. Each module has ``register(subparsers)``; the
parser it adds sets ``handler``, an async function ``(args, settings) -> exit code``."""

from __future__ import annotations

from types import ModuleType

from bulkorder.commands import demo, orders, stack

COMMAND_MODULES: list[ModuleType] = [stack, orders, demo]
