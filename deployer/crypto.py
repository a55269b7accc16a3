"""Encryption at rest for secret env values and endpoint signing keys.

Fernet (AES-128-CBC + HMAC-SHA256) keyed from MCPFC_SECRET_KEY. Rotation: put the new key in SECRET_KEY
and the old one in OLD_SECRET_KEYS; reads try every key, writes use the new one, and
`mcp-fc keys rotate-secrets` (or any redeploy) re-encrypts.
"""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from deployer.errors import ConfigError
from deployer.settings import Settings


def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"mcp-fc/v1/" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class Vault:
    def __init__(self, secret_key: str, old_keys: list[str] | tuple[str, ...] = ()) -> None:
        self._fernet = MultiFernet([_fernet(secret_key), *(_fernet(k) for k in old_keys)])

    @classmethod
    def from_settings(cls, settings: Settings) -> "Vault":
        return cls(
            settings.secret_key.get_secret_value(), [k.get_secret_value() for k in settings.old_secret_keys]
        )

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "stored secrets cannot be decrypted: MCPFC_SECRET_KEY changed without OLD_SECRET_KEYS"
            ) from None

    def encrypt_json(self, value: object) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, token: str | None) -> object:
        return None if not token else json.loads(self.decrypt(token))

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
