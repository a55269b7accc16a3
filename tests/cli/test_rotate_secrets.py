"""`mcp-fc keys rotate-secrets`: a leaked MCPFC_SECRET_KEY has a remedy (issue 26 #13). Every stored secret is
re-encrypted under the new key while the old one still reads; an interrupted pass leaves every row readable
and the next run goes on where it stopped. A real SQLite database, the real store and CLI."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from deployer.crypto import Vault
from deployer.errors import ConfigError
from deployer.settings import Settings
from deployer.store import lifecycle, migrate
from deployer.store.db import session_scope
from deployer.store.rekey import rotate_secrets
from deployer.store.tables import DeploymentRow
from schemas import DeployRequest

OLD, NEW = "the-old-leaked-key-0123456789", "a-new-random-key-9876543210"
CANARIES = [f"canary-secret-{i}-5f0e" for i in range(5)]


def _stored(settings: Settings) -> dict[str, str]:
    """The five deployments, created under the old key, each with a secret env value (one with a token)."""
    migrate.upgrade(settings.effective_database_url)
    vault = Vault(OLD)
    ids = {}
    with session_scope(settings) as session:
        for i, canary in enumerate(CANARIES):
            req = DeployRequest(
                name=f"d{i}", image="localhost/x:1", command=["srv"], secret_env={"T": canary}
            )
            row = lifecycle.create_deployment(
                session, vault, owner_id="o1", req=req, region="cn-hangzhou", deadline_s=60
            )
            ids[row.id] = canary
        session.commit()
        first = sorted(ids)[0]
        session.execute(
            update(DeploymentRow)
            .where(DeploymentRow.id == first)
            .values(endpoint_token_enc=vault.encrypt("tok"))
        )
        session.commit()
    return ids


def _values(settings: Settings, vault: Vault) -> dict[str, str]:
    with session_scope(settings) as session:
        rows = session.execute(select(DeploymentRow.id, DeploymentRow.secret_env_enc)).all()
    return {dep_id: vault.decrypt_json(token)["T"] for dep_id, token in rows}


def _current(settings: Settings) -> int:
    vault = Vault(NEW)
    with session_scope(settings) as session:
        rows = session.execute(select(DeploymentRow.secret_env_enc, DeploymentRow.endpoint_token_enc)).all()
    return sum(all(vault.is_current(t) for t in row if t) for row in rows)


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("MCPFC_SECRET_KEY", NEW)
    monkeypatch.setenv("MCPFC_OLD_SECRET_KEYS", json.dumps([OLD]))
    return Settings()


def test_an_interrupted_pass_keeps_every_secret_readable_and_the_rerun_finishes(settings, cli):
    ids = _stored(settings)
    seen: list[str] = []

    def ctrl_c_after_two(dep_id: str, outcome: str) -> None:
        seen.append(outcome)
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a crash) in the middle of the pass

    with session_scope(settings) as session, pytest.raises(KeyboardInterrupt):
        rotate_secrets(session, Vault(NEW, [OLD]), on_row=ctrl_c_after_two)
    assert seen == ["rotated", "rotated"]
    assert _current(settings) == 2, "each row is committed on its own"
    assert _values(settings, Vault(NEW, [OLD])) == ids, "old and new key read every row meanwhile"
    with pytest.raises(ConfigError):
        _values(settings, Vault(NEW))  # three rows still need the old key

    result = cli("keys", "rotate-secrets", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {
        "rotated": 3,
        "already_current": 2,
        "changed_meanwhile": 0,
        "unreadable": [],
        "done": True,
    }
    assert "MCPFC_OLD_SECRET_KEYS may be emptied" in result.stderr
    assert not any(c in result.output for c in [*CANARIES, OLD, NEW])
    assert _values(settings, Vault(NEW)) == ids, "the new key alone reads every row now"
    assert _current(settings) == 5

    again = cli("keys", "rotate-secrets")
    assert again.exit_code == 0 and "re-encrypted 0 deployment(s); 5 already" in again.stdout


def test_a_secret_no_key_opens_is_named_and_exits_1(settings, cli):
    ids = _stored(settings)
    lost = sorted(ids)[-1]
    with session_scope(settings) as session:
        session.execute(
            update(DeploymentRow)
            .where(DeploymentRow.id == lost)
            .values(secret_env_enc=Vault("some-third-key-000000").encrypt_json({"T": "x"}))
        )
        session.commit()
    result = cli("keys", "rotate-secrets")
    assert result.exit_code == 1
    assert lost in result.stderr and "no key" in result.stderr
    assert "re-encrypted 4 deployment(s)" in result.stdout
