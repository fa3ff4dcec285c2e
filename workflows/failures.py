"""Failures small enough for Temporal to keep, so a retried step's error stays readable.

While an activity is retried, Temporal keeps its last failure in the workflow's mutable
state, where failures are capped (``limit.mutableStateActivityFailureSize``: a warning
past 2 KB; past 4 KB the failure is replaced by "Failure exceeds size limit."). A Python
exception from deep in a client library easily passes that with its chained causes and
their stack traces (a refused S3 connection: four exceptions, ~9 KB), and then ``bulkorder
show`` could say nothing but "Failure exceeds size limit".

:class:`BoundedFailureConverter` is Temporal's default converter, then bounds what it
built: messages cut, stack traces cut to their innermost frames, at most a few causes,
and the causes' traces dropped first if that is still too big. Types, the
non-retryable flag and details are left alone, so retry policies and the workflow's
handling see the same failure. The full exception is still in the worker's log.
"""

from __future__ import annotations

from typing import Any

import temporalio.api.failure.v1
from temporalio.converter import DefaultFailureConverter, PayloadConverter

#: Under Temporal's default warning threshold for a pending activity's failure (2 KB).
MAX_FAILURE_BYTES = 2_000
MAX_MESSAGE_CHARS = 1_000
MAX_CAUSE_MESSAGE_CHARS = 300
#: The end of a stack trace (its innermost frames: where it went wrong) is kept.
MAX_TRACE_CHARS = 800
MAX_CAUSE_TRACE_CHARS = 300
MAX_CAUSES = 3


class BoundedFailureConverter(DefaultFailureConverter):
    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        bound_failure(failure)


def bound_failure(failure: Any, max_bytes: int = MAX_FAILURE_BYTES) -> None:
    """Shrink ``failure`` (a ``Failure`` proto, in place) towards ``max_bytes``."""
    failure.message = _head(failure.message, MAX_MESSAGE_CHARS)
    failure.stack_trace = _tail(failure.stack_trace, MAX_TRACE_CHARS)
    level, depth = failure, 0
    while level.HasField("cause"):
        cause = level.cause
        depth += 1
        if depth > MAX_CAUSES:
            level.ClearField("cause")
            break
        cause.message = _head(cause.message, MAX_CAUSE_MESSAGE_CHARS)
        cause.stack_trace = _tail(cause.stack_trace, MAX_CAUSE_TRACE_CHARS)
        level = cause
    if failure.ByteSize() <= max_bytes:
        return
    level = failure
    while level.HasField("cause"):
        level = level.cause
        level.stack_trace = ""
    if failure.ByteSize() > max_bytes:
        failure.stack_trace = _tail(failure.stack_trace, 200)
    if failure.ByteSize() > max_bytes and failure.HasField("cause"):
        failure.cause.ClearField("cause")
    if failure.ByteSize() > max_bytes:
        failure.ClearField("cause")


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
