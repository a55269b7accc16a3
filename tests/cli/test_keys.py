"""`mcp-fc keys`: server-side administration against a real (temporary) SQLite database."""

from __future__ import annotations

import json

from deployer.settings import Settings
from deployer.store import keys
from deployer.store.db import session_scope


def _authenticates(key: str) -> bool:
    with session_scope(Settings()) as session:
        return keys.authenticate(session, key) is not None


def _printed(stdout: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in stdout.splitlines() if line.strip())


def test_create_prints_a_key_that_authenticates(cli, tmp_path):
    result = cli("keys", "create", "--name", "ci")

    assert result.exit_code == 0, result.stderr
    printed = _printed(result.stdout)
    assert set(printed) == {"id", "owner", "key"}
    assert printed["key"].startswith(f"mcpfc_{printed['id']}_")
    assert result.stdout.count(printed["key"]) == 1, "the key is printed once"
    assert "not shown again" in result.stderr
    assert (tmp_path / "data" / "mcp-fc.db").exists()
    assert _authenticates(printed["key"])


def test_revoke_makes_the_key_useless(cli):
    printed = _printed(cli("keys", "create").stdout)
    assert _authenticates(printed["key"])

    result = cli("keys", "revoke", printed["id"])

    assert result.exit_code == 0, result.stderr
    assert not _authenticates(printed["key"])
    again = cli("keys", "revoke", printed["id"])
    assert again.exit_code == 2 and again.stderr == f"error: no active API key with id {printed['id']}\n"


def test_create_json_and_existing_owner(cli):
    first = json.loads(cli("keys", "create", "--json").stdout)
    second = json.loads(
        cli("keys", "create", "--owner", first["owner_id"], "--json", "--name", "laptop").stdout
    )
    assert second["owner_id"] == first["owner_id"] and second["id"] != first["id"]
    assert second["name"] == "laptop"
    assert _authenticates(first["key"]) and _authenticates(second["key"])


def test_keys_use_the_database_url_setting(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("MCPFC_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    printed = _printed(cli("keys", "create").stdout)
    assert (tmp_path / "elsewhere.db").exists()
    assert _authenticates(printed["key"])


def test_unusable_database_is_one_line(cli, monkeypatch, tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("MCPFC_DATABASE_URL", f"sqlite:///{tmp_path / 'not-a-dir' / 'x.db'}")
    result = cli("keys", "create")
    assert result.exit_code in (2, 3)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_list_shows_ids_owners_and_names_never_a_secret(cli):
    first = json.loads(cli("keys", "create", "--name", "ci", "--json").stdout)
    second = json.loads(cli("keys", "create", "--name", "laptop", "--json").stdout)
    assert cli("keys", "revoke", second["id"]).exit_code == 0

    listed = cli("keys", "list")
    assert listed.exit_code == 0, listed.stderr
    assert first["id"] in listed.stdout and "ci" in listed.stdout
    assert second["id"] not in listed.stdout, "revoked keys only with --all"
    for key in (first["key"], second["key"]):
        secret = key.split("_", 2)[2]
        assert secret not in listed.stdout

    everything = json.loads(cli("keys", "list", "--all", "--json").stdout)
    by_id = {item["id"]: item for item in everything}
    assert set(by_id) == {first["id"], second["id"]}
    assert by_id[first["id"]]["revoked_at"] is None and by_id[second["id"]]["revoked_at"]
    assert set(by_id[first["id"]]) == {"id", "owner_id", "name", "created_at", "revoked_at"}


def test_list_of_no_keys(cli):
    assert cli("keys", "list").stdout == "No active API keys.\n"
    assert json.loads(cli("keys", "list", "--json").stdout) == []


def test_revoke_json(cli):
    printed = json.loads(cli("keys", "create", "--json").stdout)
    result = cli("keys", "revoke", printed["id"], "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"id": printed["id"], "revoked": True}
    assert not _authenticates(printed["key"])
