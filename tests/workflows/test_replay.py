"""Old histories must replay on the current workflow code (determinism check).

The files under ``histories/`` were recorded from earlier versions of ``OrderWorkflow``
(see ``capture_histories.py``). A change that would break running workflows in
production fails here first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from bulkorder.workflows.order_workflow import OrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_saved_histories() -> None:
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_saved_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=[OrderWorkflow]).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
