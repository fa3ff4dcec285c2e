"""What an order's workflow is waiting on right now: its pending steps, read from Temporal.

While an activity is retried, nothing is recorded anywhere but in Temporal's mutable
state: ``DescribeWorkflowExecution`` lists each pending activity with its attempt count,
the last attempt's failure, when it last ran and when the next attempt is due. That is
how a caller sees a step that keeps failing (a store unreachable, a bug) before anyone
waits on it blind.

Everything here comes from the server and is shown to people: each failure message is
cut to its first line, bounded, stripped of control characters (no terminal escapes) and
of anything that looks like a credential; heartbeat details are decoded only when small
and only as a count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.converter import DataConverter

from bulkorder.domain.summary import OrderSummary
from bulkorder.workflows.messages import FULFILL_ACTIVITY, FULFILL_CHECKED_ACTIVITY, RECORD_ACTIVITY
from bulkorder.workflows.workflow_task import FailingCreation, WorkflowTask, failing_creation

#: Temporal's execution statuses, as ``OrderProgress.workflow_status`` names them.
WORKFLOW_RUNNING = "running"
WORKFLOW_COMPLETED = "completed"

#: The readable name of each activity type (a step of the order), as users see it.
STEP_NAMES = {
    RECORD_ACTIVITY: "recording",
    FULFILL_ACTIVITY: "fulfillment",
    FULFILL_CHECKED_ACTIVITY: "fulfillment",
}

#: Longest error message shown (the first line of the failure, cut here).
MAX_ERROR_CHARS = 300
#: Heartbeat details larger than this are not decoded (the fulfillment step's is one int).
MAX_HEARTBEAT_BYTES = 1024

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credential|signature)[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_error_text(message: str, *, limit: int = MAX_ERROR_CHARS) -> str:
    """The first non-empty line of ``message``, safe to print: control characters become
    ``?``, credentials ``***``, and it is cut to ``limit`` characters."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", first)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m['name']}{m['sep']}***", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} ***", text)
    text = _AWS_KEY_ID.sub("***", text)
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class PendingStep:
    """One activity the workflow waits on, as Temporal last saw it."""

    #: ``recording`` or ``fulfillment`` (the activity type itself for any other).
    step: str
    activity_type: str
    #: ``scheduled`` (waiting for a worker or for its next retry), ``started``, ...
    state: str
    attempt: int
    #: 0 means unlimited (the order's steps retry until they succeed or fail for good).
    maximum_attempts: int
    #: The last failed attempt's error (first line, no secrets); ``None`` before any failure.
    last_error: str | None
    #: The error's type (an ``ApplicationError`` type such as ``TransientStoreError``, or
    #: the kind of failure: ``timeout``, ``canceled``, ...).
    error_type: str | None
    #: When the current attempt was scheduled (for a retry: when it is due).
    scheduled_at: datetime | None
    #: When the current attempt started (``None`` while it waits for its turn).
    last_started_at: datetime | None
    #: When the last attempt ended (with ``last_error``).
    last_failed_at: datetime | None
    last_heartbeat_at: datetime | None
    #: When the next attempt will be scheduled (``None`` while one runs).
    next_retry_at: datetime | None
    #: What the step last reported by heartbeat: for fulfillment, the batches read so far.
    progress: int | None

    @property
    def failing(self) -> bool:
        """Retried after a failure: the step has failed at least once and goes on trying."""
        return self.attempt > 1 and self.last_error is not None

    @property
    def last_attempt_at(self) -> datetime | None:
        """When the step last did something: started, or ended in failure."""
        times = [t for t in (self.last_started_at, self.last_failed_at) if t is not None]
        return max(times) if times else None

    def to_json(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "step": self.step,
            "activity_type": self.activity_type,
            "state": self.state,
            "attempt": self.attempt,
            "maximum_attempts": self.maximum_attempts,
            "last_error": self.last_error,
            "error_type": self.error_type,
            "scheduled_at": stamp(self.scheduled_at),
            "last_started_at": stamp(self.last_started_at),
            "last_failed_at": stamp(self.last_failed_at),
            "last_attempt_at": stamp(self.last_attempt_at),
            "last_heartbeat_at": stamp(self.last_heartbeat_at),
            "next_retry_at": stamp(self.next_retry_at),
            "progress": self.progress,
        }

    def describe(self) -> str:
        """One line for people: which step, how often, the error, when it was last tried
        and when it will be tried again."""
        parts = [f"{self.step} step failing: attempt {self.attempt}"]
        if self.last_attempt_at is not None:
            parts.append(f"last tried {_clock(self.last_attempt_at)}")
        if self.next_retry_at is not None:
            parts.append(f"next retry {_clock(self.next_retry_at)}")
        what = f" ({self.error_type})" if self.error_type else ""
        return ", ".join(parts) + f": {self.last_error}{what}"


def failing_step(steps: Iterable[PendingStep], *, min_attempts: int = 2) -> PendingStep | None:
    """The failing step with the most attempts, if any has at least ``min_attempts``."""
    failing = [step for step in steps if step.failing and step.attempt >= min_attempts]
    return max(failing, key=lambda step: step.attempt) if failing else None


async def read_pending_steps(
    pending: Iterable[PendingActivityInfo], converter: DataConverter | None = None
) -> list[PendingStep]:
    """The pending activities of a ``describe()`` (``raw_description.pending_activities``)
    as :class:`PendingStep` s. With ``converter`` (the client's), small heartbeat details
    are decoded into the step's progress."""
    return [await _step(info, converter) for info in pending]


async def _step(info: PendingActivityInfo, converter: DataConverter | None) -> PendingStep:
    activity_type = safe_error_text(info.activity_type.name, limit=100) or "?"
    failure = info.last_failure if info.HasField("last_failure") else None
    if failure is not None and converter is not None:
        failure = await _readable_failure(failure, converter)
    return PendingStep(
        step=STEP_NAMES.get(activity_type, activity_type),
        activity_type=activity_type,
        state=_state_name(info.state),
        attempt=max(int(info.attempt), 1),
        maximum_attempts=int(info.maximum_attempts),
        last_error=_failure_text(failure) if failure is not None else None,
        error_type=_failure_type(failure) if failure is not None else None,
        scheduled_at=_time(info, "scheduled_time"),
        last_started_at=_time(info, "last_started_time"),
        last_failed_at=_time(info, "last_attempt_complete_time") if failure is not None else None,
        last_heartbeat_at=_time(info, "last_heartbeat_time"),
        next_retry_at=_time(info, "next_attempt_schedule_time"),
        progress=await _progress(info, converter),
    )


def _state_name(state: int) -> str:
    try:
        name = PendingActivityState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return f"unknown({int(state)})"
    return name.removeprefix("PENDING_ACTIVITY_STATE_").lower()


def _time(info: PendingActivityInfo, name: str) -> datetime | None:
    if not info.HasField(name):  # type: ignore[arg-type]
        return None
    return getattr(info, name).ToDatetime(tzinfo=timezone.utc)  # type: ignore[no-any-return]


async def _readable_failure(failure: Any, converter: DataConverter) -> Any:
    """``failure`` with its message restored: a deployment's failures travel with their
    message and stack trace in an encoded (encrypted) payload, ``encoded_attributes``
    (temporalio's ``encode_common_attributes``); undecodable ones are shown as they are."""
    copy = type(failure)()
    copy.CopyFrom(failure)
    try:
        if converter.payload_codec is not None:
            await converter.payload_codec.decode_failure(copy)
        for part in (copy, copy.cause if copy.HasField("cause") else None):
            if part is not None and part.HasField("encoded_attributes"):
                attributes = converter.payload_converter.from_payloads([part.encoded_attributes])[0]
                if isinstance(attributes, dict) and isinstance(attributes.get("message"), str):
                    part.message = attributes["message"]
    except Exception:  # noqa: BLE001 - a failure we cannot decode is still shown, encoded
        return failure
    return copy


def _failure_text(failure: Any) -> str:
    message = str(failure.message or "")
    if not message and failure.HasField("cause"):
        message = str(failure.cause.message or "")
    return safe_error_text(message) or "(no message)"


def _failure_type(failure: Any) -> str:
    kind = failure.WhichOneof("failure_info")
    if kind == "application_failure_info":
        return safe_error_text(failure.application_failure_info.type, limit=100) or "ApplicationError"
    if kind == "timeout_failure_info":
        return "timeout"
    return str(kind or "failure").removesuffix("_failure_info")


async def _progress(info: PendingActivityInfo, converter: DataConverter | None) -> int | None:
    """The last heartbeat's first detail, if it is a small whole number. Progress is only
    informative: anything else (too big, not a count, not decodable) is ``None``."""
    if converter is None or not info.HasField("heartbeat_details"):
        return None
    payloads = list(info.heartbeat_details.payloads)
    if not payloads or sum(payload.ByteSize() for payload in payloads) > MAX_HEARTBEAT_BYTES:
        return None
    try:
        values = await converter.decode(payloads[:1])
    except Exception:  # noqa: BLE001 - a heartbeat we cannot read is no progress, not an error
        return None
    value = values[0] if values else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value


def _clock(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class OrderProgress:
    """One look at an order's workflow: its execution status, the order's counters and
    the steps it waits on."""

    order_id: str
    #: Temporal's execution status of the latest run: ``running``, ``completed``,
    #: ``failed``, ``terminated``, ``timed_out``, ``canceled``.
    workflow_status: str
    #: The workflow's view while it runs (its ``summary`` query), its result once completed;
    #: ``None`` if neither could be read (then ``error`` says why).
    summary: OrderSummary | None
    steps: list[PendingStep]
    #: Why a closed workflow did not complete, or why a running one did not answer.
    error: str | None = None
    #: The workflow task it has open, if any: how a creation whose record (a local
    #: activity, no pending step) keeps failing shows (bulkorder.workflows.workflow_task).
    workflow_task: WorkflowTask | None = None

    @property
    def running(self) -> bool:
        return self.workflow_status == WORKFLOW_RUNNING

    @property
    def status(self) -> str | None:
        """The order's status (``open``, ``submitted``, ``failed``, ...) if known."""
        return None if self.summary is None else self.summary.status

    def failing_step(self, min_attempts: int = 2) -> PendingStep | None:
        return failing_step(self.steps, min_attempts=min_attempts)

    def failing_creation(self, min_attempts: int = 2) -> FailingCreation | None:
        """The creation's record (a local activity) retried until ``min_attempts`` at least."""
        return failing_creation(self.workflow_task, min_attempts=min_attempts) if self.running else None

    def step(self, name: str) -> PendingStep | None:
        return next((step for step in self.steps if step.step == name), None)
