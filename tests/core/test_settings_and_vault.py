"""Safe defaults: production refuses the default secret key; secrets decrypt across key rotation."""

import pytest

from deployer.crypto import Vault
from deployer.errors import ConfigError
from deployer.settings import Settings


def test_production_refuses_the_default_secret_key(monkeypatch):
    monkeypatch.setenv("MCPFC_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings()
    monkeypatch.setenv("MCPFC_SECRET_KEY", "a-long-random-value-from-the-operator")
    assert Settings().environment == "production"


def test_vault_round_trip_and_rotation():
    old = Vault("old-key")
    token = old.encrypt_json({"TOKEN": "s3cret"})
    assert "s3cret" not in token
    rotated = Vault("new-key", ["old-key"])
    assert rotated.decrypt_json(token) == {"TOKEN": "s3cret"}
    fresh = rotated.rotate(token)
    assert Vault("new-key").decrypt_json(fresh) == {"TOKEN": "s3cret"}
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        Vault("new-key").decrypt(token)


def test_fc_endpoint_scheme_sets_the_protocol():
    from deployer.fc.gateway import make_client

    client = make_client(Settings(fc_endpoint="http://127.0.0.1:8931/"))
    assert client._endpoint == "127.0.0.1:8931" and client._protocol == "http"


def test_the_default_region_must_be_one_fc_has(tmp_path):
    """Every deploy without a region goes to MCPFC_REGION: a region FC lacks is refused at start."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="Function Compute has no region 'mars-1'"):
        Settings(_env_file=None, data_dir=tmp_path, region="mars-1")
    assert Settings(_env_file=None, data_dir=tmp_path, region="ap-southeast-1").region == "ap-southeast-1"


def test_fc_is_local_only_on_loopback(tmp_path):
    def local(endpoint):
        return Settings(_env_file=None, data_dir=tmp_path, fc_endpoint=endpoint).fc_is_local

    assert local("http://127.0.0.1:8931") and local("localhost:8931") and local("http://[::1]:1")
    assert not local(None) and not local("https://123.cn-hangzhou.fc.aliyuncs.com")
    assert not local("http://fc-{region}.internal:9000")
