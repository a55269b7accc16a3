"""Encryption at rest for secret env values, endpoint signing keys and endpoint tokens.

Fernet (AES-128-CBC + HMAC-SHA256) keyed from MCPFC_SECRET_KEY. Rotating a leaked key, on every API and
worker host alike:

1. set MCPFC_SECRET_KEY to a new random value and put the old one in MCPFC_OLD_SECRET_KEYS (a JSON list:
   `'["old key"]'`), then restart: reads try every key (MultiFernet), writes use the new one;
2. run `mcp-fc keys rotate-secrets` once: it re-encrypts every stored secret under the new key, a row per
   transaction (deployer/store/rekey.py). Interrupted, it is run again: a row whose values the new key
   alone opens is done, which is its marker, so the pass resumes where it stopped;
3. once it says every secret is under the current key, remove the old key from MCPFC_OLD_SECRET_KEYS.
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
        self._current = _fernet(secret_key)
        self._fernet = MultiFernet([self._current, *(_fernet(k) for k in old_keys)])

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
                "stored secrets cannot be decrypted: MCPFC_SECRET_KEY changed without MCPFC_OLD_SECRET_KEYS"
            ) from None

    def encrypt_json(self, value: object) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, token: str | None) -> object:
        return None if not token else json.loads(self.decrypt(token))

    def rotate(self, token: str) -> str:
        """The token re-encrypted under the current key (raises ConfigError when no key opens it)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored secret opens with none of MCPFC_SECRET_KEY, MCPFC_OLD_SECRET_KEYS"
            ) from None

    def is_current(self, token: str) -> bool:
        """True when the current key alone opens the token: nothing to re-encrypt."""
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True
