"""Endpoint credentials for `jwt` triggers: a signing key per deployment and a long-lived token.

FC's JWT trigger auth checks `Authorization: Bearer <jwt>` against the JWKS in the trigger config
(public key only). MCP clients send the token as a static header, so we mint one long-lived token;
`mcp-fc token rotate NAME` replaces the key, which invalidates every earlier token.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TOKEN_TTL_S = 365 * 24 * 3600
ISSUER = "mcp-fc"


@lru_cache(maxsize=1024)
def _private_key(pem: str) -> Any:
    """Parse a key we made ourselves, once. OpenSSL's RSA consistency check costs ~40 ms a load and runs
    twice per deploy; our keys come only from new_signing_key() through the encrypted store."""
    return serialization.load_pem_private_key(
        pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
    )


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str

    def public_jwk(self) -> dict[str, Any]:
        private = _private_key(self.private_pem)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))  # type: ignore[arg-type]
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def to_json(self) -> str:
        return json.dumps({"kid": self.kid, "private_pem": self.private_pem})

    @classmethod
    def from_json(cls, raw: str) -> SigningKey:
        data = json.loads(raw)
        return cls(kid=data["kid"], private_pem=data["private_pem"])


def new_signing_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(kid=secrets.token_hex(8), private_pem=pem)


def mint_token(key: SigningKey, *, subject: str, ttl_s: int = TOKEN_TTL_S, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, _private_key(key.private_pem), algorithm="RS256", headers={"kid": key.kid})
