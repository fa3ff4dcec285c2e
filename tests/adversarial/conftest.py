"""The adversarial suite: every case prints one ``ATTACK`` line; the table comes at the end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adversarial.report import REPORTED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/adversarial/" in str(item.fspath):
            item.add_marker(pytest.mark.adversarial)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORTED:
        return
    terminalreporter.section("adversarial cases")
    for line in REPORTED:
        terminalreporter.write_line(str(line))
