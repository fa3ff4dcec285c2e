"""Names a package exports, each loaded from its module on first use (PEP 562).

``bulkorder`` and ``bulkorder.analysis`` name many entry points; importing them must not
import Temporal, boto3 or the event store. A package gives its name -> module map to
:func:`lazy_exports` and binds the two functions it returns as its ``__getattr__`` and
``__dir__``. Standard library only: Temporal's workflow sandbox runs ``bulkorder``'s
``__init__`` as the parent of ``bulkorder.workflows``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_exports(package: str, namespace: dict[str, Any], exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose module globals are ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
