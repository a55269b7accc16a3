"""The emulator's own JWT check (fc_emulator/jwt_verify.py), with tokens minted here by PyJWT and
cryptography directly, not by mcp-fc's code: the emulator is an oracle for what mcp-fc sends, so its idea of
a valid token is tested on its own (test_trigger_auth.py covers the HTTP side, with the product's tokens).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from fc_emulator.jwt_verify import verify

KID = "key-1"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(private_key: rsa.RSAPrivateKey, **fields: Any) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update({"use": "sig", **fields})
    return jwk


@pytest.fixture(scope="module")
def jwks(private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {"keys": [jwk_of(private_key, kid=KID, alg="RS256")]}


def mint(
    private_key: Any, claims: dict[str, Any] | None = None, *, algorithm: str = "RS256", **header: Any
) -> str:
    header.setdefault("kid", KID)
    if header["kid"] is None:  # a token without a kid
        del header["kid"]
    body = {"sub": "client-1", "exp": int(time.time()) + 300} if claims is None else claims
    return jwt.encode(body, private_key, algorithm=algorithm, headers=header)


def test_a_good_rs256_token_gives_its_claims(private_key, jwks):
    claims = verify(
        mint(private_key, {"sub": "client-1", "exp": int(time.time()) + 300, "scope": "a b"}), jwks
    )
    assert claims["sub"] == "client-1"
    assert claims["scope"] == "a b"


def test_the_jwk_alg_defaults_to_rs256(private_key):
    assert verify(mint(private_key), {"keys": [jwk_of(private_key, kid=KID)]})["sub"] == "client-1"


def test_a_kid_no_jwk_has_is_refused(private_key, jwks):
    with pytest.raises(jwt.InvalidTokenError, match="kid 'other-key'"):
        verify(mint(private_key, kid="other-key"), jwks)


def test_a_jwk_without_kid_matches_only_a_token_without_one(private_key):
    kidless = {"keys": [jwk_of(private_key, alg="RS256")]}
    assert verify(mint(private_key, kid=None), kidless)["sub"] == "client-1"
    with pytest.raises(jwt.InvalidTokenError, match="kid"):
        verify(mint(private_key), kidless)


def test_alg_none_is_refused(jwks):
    token = jwt.encode(
        {"sub": "client-1", "exp": int(time.time()) + 300}, None, algorithm="none", headers={"kid": KID}
    )
    with pytest.raises(jwt.InvalidAlgorithmError, match="'none'"):
        verify(token, jwks)


def test_hs256_is_refused_whatever_the_jwk_says(jwks):
    token = mint("a-shared-secret-long-enough-for-hmac-sha256!", algorithm="HS256")
    with pytest.raises(jwt.InvalidAlgorithmError, match="'HS256'"):
        verify(token, jwks)
    # A JWKS holds public keys: an HMAC key in it is refused too, before the token is looked at.
    hmac_jwks = {"keys": [{"kty": "oct", "kid": KID, "alg": "HS256", "k": "c2VjcmV0"}]}
    with pytest.raises(jwt.InvalidAlgorithmError, match="not a public-key algorithm"):
        verify(token, hmac_jwks)


def test_an_expired_token_is_refused(private_key, jwks):
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(mint(private_key, {"sub": "client-1", "exp": int(time.time()) - 60}), jwks)


def test_a_token_without_exp_is_refused(private_key, jwks):
    with pytest.raises(jwt.MissingRequiredClaimError, match="exp"):
        verify(mint(private_key, {"sub": "client-1"}), jwks)


def test_a_token_not_yet_valid_is_refused(private_key, jwks):
    now = int(time.time())
    with pytest.raises(jwt.ImmatureSignatureError):
        verify(mint(private_key, {"sub": "client-1", "exp": now + 600, "nbf": now + 300}), jwks)


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(jwks):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(mint(other), jwks)
