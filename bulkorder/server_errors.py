"""The errors of bulkorder's two HTTP servers (the codec server, the worker's operations
port), apart from the servers: the CLI classifies them (``bulkorder.errors``) without
importing aiohttp, which every command would pay for at its start (~0.1 CPU-s)."""

from __future__ import annotations

from bulkorder.domain.errors import BulkorderError

__all__ = ["CodecServerError", "OpsServerError"]


class CodecServerError(RuntimeError):
    """The codec server cannot start (address in use, no such interface, no token off loopback)."""


class OpsServerError(BulkorderError):
    """The operations port cannot listen (address in use, no such interface)."""
