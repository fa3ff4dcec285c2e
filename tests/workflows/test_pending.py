"""``bulkorder.workflows.pending``: Temporal's pending-activity information read into steps people can
read, and the server's text treated as hostile (first line, bounded, no secrets, no escapes)."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import ActivityType, Payloads
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.converter import DataConverter

from bulkorder.workflows.messages import FULFILL_CHECKED_ACTIVITY, RECORD_ACTIVITY
from bulkorder.workflows.pending import MAX_ERROR_CHARS, failing_step, read_pending_steps, safe_error_text

AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def stamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


async def pending(
    activity_type: str, *, attempt: int, message: str | None = None, heartbeat: object = None, **extra: object
) -> PendingActivityInfo:
    info = PendingActivityInfo(
        activity_id="1",
        activity_type=ActivityType(name=activity_type),
        state=PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED,
        attempt=attempt,
        scheduled_time=stamp(AT),
        **extra,  # type: ignore[arg-type]
    )
    if message is not None:
        info.last_failure.CopyFrom(
            Failure(message=message, application_failure_info=ApplicationFailureInfo(type="TransientStoreError"))
        )
        info.last_attempt_complete_time.CopyFrom(stamp(AT))
        info.next_attempt_schedule_time.CopyFrom(stamp(AT.replace(second=9)))
    if heartbeat is not None:
        info.heartbeat_details.CopyFrom(Payloads(payloads=await DataConverter.default.encode([heartbeat])))
    return info


async def test_a_retried_step_reads_as_failing_with_its_attempt_error_and_times() -> None:
    info = await pending(FULFILL_CHECKED_ACTIVITY, attempt=4, message="cannot get batches/ab: store did not answer\nTraceback...", heartbeat=7)
    [step] = await read_pending_steps([info], DataConverter.default)
    assert step.step == "fulfillment" and step.activity_type == FULFILL_CHECKED_ACTIVITY
    assert step.failing and step.attempt == 4 and step.state == "scheduled"
    assert step.last_error == "cannot get batches/ab: store did not answer"
    assert step.error_type == "TransientStoreError"
    assert step.last_attempt_at == AT and step.next_retry_at == AT.replace(second=9)
    assert step.progress == 7
    data = step.to_json()
    assert data["last_attempt_at"] == "2025-03-04T05:06:07Z" and data["next_retry_at"] == "2025-03-04T05:06:09Z"
    assert "attempt 4" in step.describe() and "store did not answer" in step.describe()
    assert failing_step([step]) == step and failing_step([step], min_attempts=5) is None


async def test_a_first_attempt_or_a_step_without_failure_is_not_failing() -> None:
    first = await pending(RECORD_ACTIVITY, attempt=1, message="boom")
    quiet = await pending(RECORD_ACTIVITY, attempt=3)
    steps = await read_pending_steps([first, quiet], DataConverter.default)
    assert [step.step for step in steps] == ["recording", "recording"]
    assert not any(step.failing for step in steps) and failing_step(steps) is None
    assert steps[1].last_error is None and steps[1].last_attempt_at is None


async def test_unknown_activities_keep_their_type_and_odd_heartbeats_are_no_progress() -> None:
    odd = await pending("some_other_activity", attempt=2, message="x", heartbeat={"not": "a count"})
    huge = await pending(FULFILL_CHECKED_ACTIVITY, attempt=2, message="x", heartbeat="y" * 5_000)
    negative = await pending(FULFILL_CHECKED_ACTIVITY, attempt=2, message="x", heartbeat=-3)
    steps = await read_pending_steps([odd, huge, negative], DataConverter.default)
    assert steps[0].step == "some_other_activity"
    assert [step.progress for step in steps] == [None, None, None]
    # Without a converter nothing is decoded at all.
    [plain] = await read_pending_steps([await pending(FULFILL_CHECKED_ACTIVITY, attempt=1, heartbeat=3)])
    assert plain.progress is None


def test_error_text_is_one_bounded_line_without_secrets_or_escapes() -> None:
    text = safe_error_text(
        "\n  cannot reach https://admin:hunter2@s3.example.com/b password=hunter2 token: abc123 "
        "Authorization: Bearer eyJhbGciOi AKIAABCDEFGHIJKLMNOP \x1b[2J done\nsecond line aws_secret_access_key=zz"
    )
    assert "hunter2" not in text and "abc123" not in text and "eyJhbGciOi" not in text
    assert "AKIAABCDEFGHIJKLMNOP" not in text and "\x1b" not in text
    assert "second line" not in text and "zz" not in text
    assert text.startswith("cannot reach https://***@s3.example.com/b password=***")
    assert len(safe_error_text("x" * 10_000)) == MAX_ERROR_CHARS
    assert safe_error_text("") == ""
