"""ACS3-HMAC-SHA256 verification against what the real SDK (sync and async) sends."""

from __future__ import annotations

import asyncio
import copy
import hashlib

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils, get_canonical_query_string
from darabonba.core import DaraCore
from darabonba.request import DaraRequest

from fc_emulator import signing
from fc_emulator.exceptions import InvalidAccessKeyID, SignatureNotMatch


@pytest.fixture
def captured(monkeypatch):
    """Records every DaraRequest the sync SDK sends (then sends it for real)."""
    requests: list[DaraRequest] = []
    original = DaraCore.do_action

    def recording(request, runtime_option=None):
        requests.append(copy.deepcopy(request))
        return original(request, runtime_option)

    monkeypatch.setattr(DaraCore, "do_action", staticmethod(recording))
    return requests


def _bytes(body: bytes | str | None) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else (body or b"")


def _replay(request: DaraRequest, body: bytes | None = None, **header_overrides) -> httpx.Response:
    headers = {**request.headers, **header_overrides}
    content = _bytes(request.body) if body is None else body
    return httpx.request(
        request.method, DaraCore.compose_url(request), headers=headers, content=content or b""
    )


@pytest.mark.parametrize("name", ["fn%2A~ x", "a/b", "a+b*c", "é-ü", "semi;colon?q=1#frag", "100%"])
def test_percent_encoded_path_names_verify(emulator, client, name):
    with pytest.raises(ClientException) as info:
        client.get_function(name, fc.GetFunctionRequest(qualifier="LATEST"))
    # the signature verified: the emulator got as far as looking the (decoded) name up
    assert info.value.code == "FunctionNotFound"
    assert info.value.data["Message"] == f"function '{name}' does not exist."


def test_invalid_names_are_rejected_after_signature_check(emulator, client, function_input):
    with pytest.raises(ClientException) as info:
        client.create_function(fc.CreateFunctionRequest(body=function_input("bad name/with~stuff")))
    assert info.value.code == "InvalidArgument"


def test_list_queries_with_special_characters_verify(emulator, client, function_input):
    for name in ("a-1", "a-2", "a-3"):
        client.create_function(fc.CreateFunctionRequest(body=function_input(name)))
    first = client.list_functions(fc.ListFunctionsRequest(prefix="a-", limit=2, fc_version="v3")).body
    assert first.next_token
    request = fc.ListFunctionsRequest(prefix="a-", limit=2, next_token=first.next_token)
    second = client.list_functions(request).body
    assert [f.function_name for f in second.functions] == ["a-3"]
    odd = client.list_functions(
        fc.ListFunctionsRequest(
            prefix="a b+c*~é&=?",
            description="x y",
            runtime="custom-container",
            tags=[fc.Tag(key="k", value="v w~*")],
        )
    ).body
    assert odd.functions == []


def test_tampered_body_fails_and_untouched_replay_passes(emulator, client, captured, function_input):
    client.create_function(fc.CreateFunctionRequest(body=function_input("orig")))
    sent = captured[-1]
    assert sent.headers["x-acs-action"] == "CreateFunction"
    # an untouched replay verifies (and is answered with the conflict)
    replay = _replay(sent)
    assert replay.status_code == 409 and replay.json()["Code"] == "FunctionAlreadyExists"
    tampered = _bytes(sent.body).replace(b'"orig"', b'"evil"')
    assert tampered != _bytes(sent.body)
    # body changed, declared hash unchanged
    r = _replay(sent, body=tampered)
    assert r.status_code == 403 and r.json()["Code"] == "SignatureNotMatch"
    # body changed and the hash header "fixed" too: the signature no longer matches
    r = _replay(sent, body=tampered, **{"x-acs-content-sha256": hashlib.sha256(tampered).hexdigest()})
    assert r.status_code == 403 and r.json()["Code"] == "SignatureNotMatch"
    # a changed signed header fails as well
    r = _replay(sent, **{"x-acs-signature-nonce": "0" * 32})
    assert r.status_code == 403
    assert "evil" not in emulator.backend.snapshot()["functions"]


def test_unsigned_headers_added_in_transit_are_ignored(emulator, client, captured):
    client.list_functions(fc.ListFunctionsRequest(prefix="p"))
    r = _replay(captured[-1], **{"x-forwarded-for": "10.0.0.1", "content-type": "application/octet-stream"})
    assert r.status_code == 200


def test_async_sdk_is_verified(emulator, make_client, function_input):
    client = make_client(emulator)

    async def scenario():
        request = fc.CreateFunctionRequest(body=function_input("async-fn"))
        created = await client.create_function_async(request)
        got = await client.get_function_async("async-fn", fc.GetFunctionRequest())
        listed = await client.list_functions_async(fc.ListFunctionsRequest(prefix="async", limit=5))
        odd = None
        try:
            await client.get_function_async("fn%2A~ x/y", fc.GetFunctionRequest())
        except ClientException as exc:
            odd = exc.code
        deleted = await client.delete_function_async("async-fn")
        return created, got, listed, odd, deleted

    created, got, listed, odd, deleted = asyncio.run(scenario())
    assert created.body.state == "Pending"
    assert got.body.function_id == created.body.function_id
    assert [f.function_name for f in listed.body.functions] == ["async-fn"]
    assert odd == "FunctionNotFound"
    assert deleted.status_code == 204

    bad = make_client(emulator, access_key_secret="wrong")
    with pytest.raises(ClientException) as info:
        asyncio.run(bad.list_functions_async(fc.ListFunctionsRequest()))
    assert info.value.code == "SignatureNotMatch"


# unit level: the verifier against the SDK's own signer ------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"prefix": "a b"},
        {"limit": "10", "nextToken": "tok~*+/="},
        {"tags": '[{"Key":"k","Value":"v"}]'},
        {"prefix": "é", "description": ""},
    ],
)
def test_canonical_query_matches_the_sdk(query):
    from urllib.parse import urlencode

    assert signing.canonical_query_string(urlencode(query)) == get_canonical_query_string(query)


def _sdk_signed(method="POST", path="/2023-03-30/functions/a%2Fb", query=None, body=b'{"x":1}'):
    request = DaraRequest()
    request.method, request.pathname, request.query = method, path, query or {}
    request.headers = {
        "host": "127.0.0.1:1",
        "x-acs-action": "CreateFunction",
        "x-acs-version": "2023-03-30",
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    request.headers["Authorization"] = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", hashlib.sha256(body).hexdigest(), "AK", "SK"
    )
    from urllib.parse import urlencode

    return request, urlencode(request.query), body


def test_verify_request_against_sdk_signer():
    request, raw_query, body = _sdk_signed(query={"prefix": "a b*", "limit": "3"})
    keys = {"AK": "SK"}
    assert signing.verify_request("POST", request.pathname, raw_query, request.headers, body, keys) == "AK"
    with pytest.raises(InvalidAccessKeyID):
        signing.verify_request("POST", request.pathname, raw_query, request.headers, body, {"OTHER": "SK"})
    with pytest.raises(SignatureNotMatch):
        signing.verify_request("POST", request.pathname, raw_query, request.headers, body, {"AK": "wrong"})
    with pytest.raises(SignatureNotMatch):  # the decoded path is not what was signed
        signing.verify_request("POST", "/2023-03-30/functions/a/b", raw_query, request.headers, body, keys)
    with pytest.raises(SignatureNotMatch):
        signing.verify_request("POST", request.pathname, raw_query + "&x=1", request.headers, body, keys)
    with pytest.raises(SignatureNotMatch):
        signing.verify_request("PUT", request.pathname, raw_query, request.headers, body, {"AK": "SK"})


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SM3 Credential=AK,SignedHeaders=host,Signature=ab",
        "ACS3-HMAC-SHA256 Credential=AK,Signature=ab",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=x-missing,Signature=ab",
    ],
)
def test_malformed_authorization_is_signature_not_match(authorization):
    request, raw_query, body = _sdk_signed()
    headers = {k: v for k, v in request.headers.items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    with pytest.raises(SignatureNotMatch):
        signing.verify_request("POST", request.pathname, raw_query, headers, body, {"AK": "SK"})
