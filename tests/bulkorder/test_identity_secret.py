"""The deployment's identity secret: from the setting, or a private file made once (the
ref-seal secret's mechanism, bulkorder.seals.home_secret), and never shown."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bulkorder.identity_secret import IDENTITY_SECRET_FILE, IdentitySecretError, IdentitySettings
from bulkorder.settings import Settings, SettingsError


def test_the_home_secret_is_made_once_private_and_shared_by_racing_processes(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        identities = list(pool.map(lambda _: IdentitySettings().identity(tmp_path), range(8)))
    assert len({identity.workflow_id("acme/PO-1") for identity in identities}) == 1
    assert (tmp_path / IDENTITY_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [IDENTITY_SECRET_FILE]  # no temporary left behind
    # Made once: the same IDs on every later start.
    assert IdentitySettings().identity(tmp_path).workflow_id("acme/PO-1") == identities[0].workflow_id("acme/PO-1")


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_SECRET_FILE
    path.write_text("a" * 64)
    os.chmod(path, 0o640)
    with pytest.raises(IdentitySecretError, match="identity secret file .* readable by it alone .*it is 0640"):
        IdentitySettings().identity(tmp_path)


def test_the_setting_wins_is_checked_and_never_shown(tmp_path: Path) -> None:
    settings = Settings.from_env({"BULKORDER_HOME": str(tmp_path), "BULKORDER_IDENTITY_SECRET": "i" * 40})
    assert "i" * 40 not in repr(settings) and "i" * 40 not in str(settings.describe())
    assert settings.order_identity().workflow_id("acme/PO-1").startswith("order-v2-")
    assert not (tmp_path / IDENTITY_SECRET_FILE).exists()
    with pytest.raises(SettingsError, match="BULKORDER_IDENTITY_SECRET is too short") as refused:
        Settings.from_env({"BULKORDER_HOME": str(tmp_path), "BULKORDER_IDENTITY_SECRET": "short-one"})
    assert "short-one" not in str(refused.value)


def test_without_a_secret_nothing_names_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    from bulkorder.domain.errors import OrderIdentityError
    from bulkorder.workflows.order_identity import identity_from_env

    with pytest.raises(OrderIdentityError, match="BULKORDER_IDENTITY_SECRET"):
        identity_from_env({})
