"""CLI commands, one module per group. Every module here that defines
``register(subparsers)`` is a command group; the parser it adds sets ``handler``, an async
function ``(args, settings) -> exit code``. Adding a command is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    return modules
