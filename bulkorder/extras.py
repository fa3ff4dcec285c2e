"""Optional extras: a module that only some users need, imported on first use with a clear
message naming the extra that installs it (``pip install 'bulkorder[EXTRA]'``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from bulkorder.domain.errors import BulkorderError


class MissingExtraError(BulkorderError, RuntimeError):
    """A feature needs an optional extra that is not installed; the message names it."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        super().__init__(f"{feature} needs {missing}, which is not installed: pip install 'bulkorder[{extra}]'")
        self.feature = feature
        self.extra = extra
        self.missing = missing


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, exc.name or module) from None
