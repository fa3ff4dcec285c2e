"""``bulkorder.workflows.failures``: a failure with deep causes and long traces shrinks under the
budget Temporal keeps for a retried activity, with its type, message and flag intact."""

from __future__ import annotations

from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from bulkorder.workflows.failures import MAX_FAILURE_BYTES, BoundedFailureConverter, bound_failure


def test_bounded_failures_keep_type_message_and_flag_under_the_budget() -> None:
    def deep(level: int) -> None:
        if level == 0:
            raise ConnectionRefusedError("[Errno 111] Connection refused " + "x" * 3_000)
        try:
            deep(level - 1)
        except Exception as exc:
            raise RuntimeError(f"level {level} failed " + "y" * 500) from exc

    try:
        try:
            deep(6)
        except Exception as exc:
            raise ApplicationError("cannot read blob: store did not answer", type="TransientStoreError") from exc
    except ApplicationError as top:
        failure = Failure()
        DataConverter.default.failure_converter.to_failure(top, DataConverter.default.payload_converter, failure)
    assert failure.ByteSize() > 4_000  # what Temporal would replace by "Failure exceeds size limit."
    bound_failure(failure)
    assert failure.ByteSize() <= MAX_FAILURE_BYTES
    assert failure.message == "cannot read blob: store did not answer"
    assert failure.application_failure_info.type == "TransientStoreError"
    assert not failure.application_failure_info.non_retryable


def test_the_converter_bounds_what_the_default_builds() -> None:
    try:
        raise ValueError("bad " + "z" * 5_000)
    except ValueError as exc:
        failure = Failure()
        BoundedFailureConverter().to_failure(exc, DataConverter.default.payload_converter, failure)
    assert failure.ByteSize() <= MAX_FAILURE_BYTES
    assert failure.message.startswith("bad zzz") and failure.message.endswith("…")
    assert failure.application_failure_info.type == "ValueError"
