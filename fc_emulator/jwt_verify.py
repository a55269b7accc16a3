"""The emulator's own JWT check for ``jwt`` triggers, written apart from the product's token code on purpose.

The emulator is an oracle for what mcp-fc sends to FC, so it must not share mcp-fc's idea of a valid token:
a bug in the product's minting would otherwise be mirrored here and pass. It reads FC's documented rules
strictly: the token's ``kid`` picks the JWK (a JWK without ``kid`` matches only a token without one), the
algorithm is the JWK's ``alg`` (RS256 when absent; ``none`` and HMAC are never accepted, since a JWKS holds
public keys), and ``exp`` is required; ``nbf`` and ``iat`` are honoured when present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

#: Public-key algorithms a JWKS can carry. HMAC would need the shared secret in the trigger config.
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})


def verify(token: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The token's claims when a key of ``jwks`` verifies it; :class:`jwt.PyJWTError` otherwise."""
    header = jwt.get_unverified_header(token)
    kid = header.get("kid")
    keys = [jwk for jwk in jwks.get("keys") or [] if isinstance(jwk, Mapping) and jwk.get("kid") == kid]
    if not keys:
        raise jwt.InvalidTokenError(f"no key in the JWKS has the token's kid {kid!r}")
    jwk = keys[0]
    alg = jwk.get("alg") or "RS256"
    if alg not in ASYMMETRIC:
        raise jwt.InvalidAlgorithmError(f"the JWK's algorithm {alg!r} is not a public-key algorithm")
    if header.get("alg") != alg:
        raise jwt.InvalidAlgorithmError(
            f"the token is signed with {header.get('alg')!r}, the JWK says {alg!r}"
        )
    public = get_default_algorithms()[alg].from_jwk(json.dumps(dict(jwk)))
    return jwt.decode(token, public, algorithms=[alg], options={"require": ["exp"], "verify_aud": False})


__all__ = ["ASYMMETRIC", "verify"]
