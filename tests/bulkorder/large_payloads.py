"""A tiny workflow that moves large values through every kind of Temporal payload, and a
walk over every payload of a history (to prove Temporal only ever held references)."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterator

from google.protobuf.message import Message
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload


@activity.defn
async def reverse(data: bytes) -> bytes:
    return data[::-1]


@workflow.defn
class LargePayloadWorkflow:
    """Input → activity (input and result) → result; a signal, a query and an update
    carry large values too. Finishes when the ``finish`` update arrives."""

    def __init__(self) -> None:
        self._note = b""
        self._finished = False

    @workflow.run
    async def run(self, data: bytes) -> bytes:
        reversed_data = await workflow.execute_activity(reverse, data, start_to_close_timeout=timedelta(minutes=2))
        await workflow.wait_condition(lambda: self._finished)
        return reversed_data

    @workflow.signal
    def note(self, data: bytes) -> None:
        self._note = data

    @workflow.query
    def noted(self) -> bytes:
        return self._note

    @workflow.update
    def finish(self, data: bytes) -> bytes:
        self._finished = True
        return data[::-1]


@workflow.defn
class EchoWorkflow:
    """Returns what it was given, by way of an activity."""

    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(echo, text, start_to_close_timeout=timedelta(minutes=1))


@activity.defn
async def echo(text: str) -> str:
    return text


def iter_payloads(message: Message) -> Iterator[Payload]:
    """Every ``Payload`` anywhere inside ``message`` (repeated fields and maps included)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values() if field.message_type.fields_by_name["value"].message_type else ()
        elif field.is_repeated:
            values = value
        else:
            values = (value,)
        for item in values:
            yield from iter_payloads(item)
