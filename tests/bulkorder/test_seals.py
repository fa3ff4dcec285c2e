"""The deployment's ref-seal secret: from the setting, or a private file made once."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bulkorder.seals import SealSecretError, SealSettings
from bulkorder.settings import Settings, SettingsError
from bulkorder.domain.refs import BatchRef, batch_key


def ref() -> BatchRef:
    sha = "ab" * 32
    return BatchRef("b-1", batch_key(sha), sha, 10, 1, 1, {"EUR": 1})


def test_the_home_secret_is_made_once_private_and_shared_by_racing_processes(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        sealers = list(pool.map(lambda _: SealSettings().sealer(tmp_path), range(8)))
    assert len({sealer.current_key_id for sealer in sealers}) == 1
    assert (tmp_path / "ref-secret").stat().st_mode & 0o777 == 0o600
    assert sealers[0].check(sealers[1].seal(ref())) is None
    assert [p.name for p in tmp_path.iterdir()] == ["ref-secret"]  # no temporary left behind


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ref-secret"
    path.write_text("a" * 64)
    os.chmod(path, 0o644)
    with pytest.raises(SealSecretError, match="readable by it alone .*it is 0644"):
        SealSettings().sealer(tmp_path)


def test_the_setting_wins_and_previous_secrets_still_verify(tmp_path: Path) -> None:
    old = SealSettings(secret="the-old-secret-long-enough").sealer(tmp_path)
    new = SealSettings.from_env(
        {"BULKORDER_REF_SECRET": "the-new-secret-long-enough", "BULKORDER_REF_SECRETS_PREVIOUS": "the-old-secret-long-enough"}
    ).sealer(tmp_path)
    assert new.check(old.seal(ref())) is None and new.current_key_id != old.current_key_id
    assert not (tmp_path / "ref-secret").exists()


def test_a_short_secret_setting_is_refused_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BULKORDER_REF_SECRET is too short") as refused:
        Settings.from_env({"BULKORDER_HOME": str(tmp_path), "BULKORDER_REF_SECRET": "tiny-secret"})
    assert "tiny-secret" not in str(refused.value)
    settings = Settings.from_env({"BULKORDER_HOME": str(tmp_path), "BULKORDER_REF_SECRET": "x" * 40})
    assert "x" * 40 not in repr(settings)


def test_a_dev_claims_folder_another_user_could_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from bulkorder.embedded import EmbeddedTemporalError, claim_port, port_claims_dir, release_port

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    port_claims_dir().mkdir(mode=0o777)
    os.chmod(port_claims_dir(), 0o777)  # as a stranger would leave it
    with pytest.raises(EmbeddedTemporalError, match="is not a private folder of this user"):
        claim_port(7233, tmp_path)
    os.chmod(port_claims_dir(), 0o700)
    claim_port(7233, tmp_path)
    assert (port_claims_dir() / "7233.json").exists()
    release_port(7233)
