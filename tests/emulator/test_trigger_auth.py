"""HTTP trigger authTypes, enforced before anything starts: anonymous, jwt and function (an ACS3 signature);
bearer is refused when the trigger is written (its wire format is not public).

The function behind the triggers is ``echo_function.py``; ``GET /request`` shows what reached it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client

from deployer.fc.endpoint_auth import mint_token, new_signing_key
from fc_emulator import EmulatorServer
from fc_emulator.signing import sign

ECHO = str(Path(__file__).with_name("echo_function.py"))
AK, SK = "auth-ak", "auth-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def key():
    return new_signing_key()


@pytest.fixture
def sdk(server: EmulatorServer, make_client) -> Client:
    server.reset()
    return make_client(server, AK, SK)


def deploy(sdk: Client, name: str, trigger_config: dict[str, Any], command: list[str] | None = None) -> str:
    sdk.create_function(
        fc.CreateFunctionRequest(
            body=fc.CreateFunctionInput(
                function_name=name,
                runtime="custom-container",
                handler="index.handler",
                cpu=0.5,
                memory_size=512,
                timeout=30,
                custom_container_config=fc.CustomContainerConfig(
                    image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
                    port=9000,
                    command=command or ["python", ECHO, "--port", "9000"],
                ),
            )
        )
    )
    config = {"methods": ["GET", "POST", "OPTIONS"], "disableURLInternet": False, **trigger_config}
    return sdk.create_trigger(
        name,
        fc.CreateTriggerRequest(
            body=fc.CreateTriggerInput(
                trigger_name="http",
                trigger_type="http",
                qualifier="LATEST",
                trigger_config=json.dumps(config),
            )
        ),
    ).body.http_trigger.url_internet


def seen_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {k.lower(): v for k, v in response.json()["headers"]}


def assert_error(response: httpx.Response, status: int, code: str, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-fc-request-id"]
    body = response.json()
    assert body["Code"] == code and text in body["Message"], body


def jwt_config(key, **auth: Any) -> dict[str, Any]:
    # the wire form deployer.fc.spec.trigger_config sends (devsapp/fc3): the prefix ends with its space
    return {
        "authType": "jwt",
        "authConfig": {"jwks": key.jwks(), "tokenLookup": "header:Authorization:Bearer ", **auth},
    }


def test_anonymous_needs_nothing_and_passes_authorization_through(sdk):
    url = deploy(sdk, "anon", {"authType": "anonymous"})
    assert "authorization" not in seen_headers(httpx.get(f"{url}/request", timeout=30))
    assert (
        seen_headers(httpx.get(f"{url}/request", headers={"Authorization": "Bearer x"}))["authorization"]
        == "Bearer x"
    )


def test_jwt_accepts_a_minted_token_and_hides_it_from_the_function(sdk, key):
    url = deploy(sdk, "jwtok", jwt_config(key))
    token = mint_token(key, subject="jwtok")
    r = httpx.get(f"{url}/request", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    headers = seen_headers(r)
    assert "authorization" not in headers
    assert token not in json.dumps(headers)


def test_jwt_rejects_missing_wrong_and_expired_tokens_before_starting(server, sdk, key):
    broken = ["python", "-c", "import sys; sys.exit(9)", "--port", "9000"]
    url = deploy(sdk, "jwtno", jwt_config(key), command=broken)
    r = httpx.get(f"{url}/sse")
    assert_error(r, 401, "Unauthorized", "'header:Authorization:Bearer ' but is missing")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(
        httpx.get(f"{url}/sse", headers={"Authorization": "Basic dTpw"}), 401, "Unauthorized", "missing"
    )
    assert_error(
        httpx.get(f"{url}/sse", headers={"Authorization": "Bearer not-a-jwt"}),
        401,
        "Unauthorized",
        "invalid JWT",
    )
    other = mint_token(new_signing_key(), subject="x")  # another key (and kid)
    assert_error(
        httpx.get(f"{url}/sse", headers={"Authorization": f"Bearer {other}"}),
        401,
        "Unauthorized",
        "invalid JWT",
    )
    expired = mint_token(key, subject="x", ttl_s=60, now=time.time() - 3600)
    assert_error(
        httpx.get(f"{url}/sse", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "Unauthorized",
        "expired",
    )
    # none of that started the (broken) function
    assert server.dataplane.list_instances() == []
    token = mint_token(key, subject="x")
    assert_error(
        httpx.get(f"{url}/sse", headers={"Authorization": f"Bearer {token}"}, timeout=30),
        502,
        "FunctionNotStarted",
        "exited with code 9",
    )


def test_jwt_token_lookup_claims_and_path_lists(sdk, key):
    config = jwt_config(
        key,
        tokenLookup="header:X-Token,query:token,cookie:jwt",
        claimPassBy="header:sub:X-User,query:iss:issuer",
        whitelist=["/public/*"],
    )
    url = deploy(sdk, "jwtlookup", config)
    token = mint_token(key, subject="alice")
    via_header = httpx.get(f"{url}/request", headers={"X-Token": token, "X-User": "mallory"}, timeout=30)
    headers = seen_headers(via_header)
    assert headers["x-user"] == "alice" and "x-token" not in headers  # claim passed, spoofed value dropped
    assert via_header.json()["path"] == "/request?issuer=mcp-fc"
    via_query = httpx.get(f"{url}/request?token={token}&issuer=spoofed")
    assert via_query.status_code == 200 and via_query.json()["path"].endswith("issuer=mcp-fc")
    assert "issuer=spoofed" not in via_query.json()["path"]
    assert httpx.get(f"{url}/request", cookies={"jwt": token}).status_code == 200
    assert httpx.get(f"{url}/request", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.get(f"{url}/public/anything").status_code == 404  # whitelisted: reaches the function
    # a blacklist protects only the listed paths; the API doc's key spelling works too
    api_doc_form = {
        "authType": "jwt",
        "methods": ["GET"],
        "authConfig": json.dumps({"JWKS": key.jwks(), "Blacklist": ["/pid"]}),
    }
    sdk.update_trigger(
        "jwtlookup",
        "http",
        fc.UpdateTriggerRequest(body=fc.UpdateTriggerInput(trigger_config=json.dumps(api_doc_form))),
    )
    assert httpx.get(f"{url}/pid").status_code == 401
    assert httpx.get(f"{url}/request").status_code == 200


def test_the_prefix_is_stripped_literally_so_one_without_its_space_refuses_a_correct_client(server, sdk, key):
    """FC strips the tokenLookup prefix literally (audit row 5): with `Bearer` (no space) the token FC
    verifies is ` eyJ...`, so a client sending the correct `Authorization: Bearer <jwt>` is refused."""
    token = mint_token(key, subject="x")
    old = deploy(sdk, "jwtold", jwt_config(key, tokenLookup="header:Authorization:Bearer"))
    refused = httpx.get(f"{old}/request", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert_error(refused, 401, "Unauthorized", "invalid JWT")
    assert "whitespace" in refused.json()["Message"]
    assert server.dataplane.list_instances() == []
    new = deploy(sdk, "jwtnew", jwt_config(key))
    assert (
        httpx.get(f"{new}/request", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
        == 200
    )
    # literal means literal: no case folding, no extra spaces
    for value in (f"bearer {token}", f"Bearer  {token}", token):
        assert httpx.get(f"{new}/request", headers={"Authorization": value}).status_code == 401, value


def test_bearer_triggers_are_refused_because_their_wire_format_is_unknown(sdk):
    with pytest.raises(Exception) as info:
        deploy(sdk, "bearer", {"authType": "bearer", "authConfig": {"tokens": ["t" * 40]}})
    assert getattr(info.value, "code", None) == "InvalidArgument"
    assert "bearer" in info.value.data["Message"] and "not public" in info.value.data["Message"]


def _signed(method: str, url: str, path: str, body: bytes, secret: str = SK) -> dict[str, str]:
    raw_path, _, raw_query = path.partition("?")
    headers = {
        "host": url.removeprefix("http://"),
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-acs-signature-nonce": "n1",
    }
    headers["Authorization"] = sign(method, raw_path, raw_query, headers, body, AK, secret)
    return headers


def test_function_auth_needs_a_signature_by_the_emulators_key_pair(sdk):
    url = deploy(sdk, "signed", {"authType": "function"})
    assert_error(httpx.get(f"{url}/request"), 403, "SignatureNotMatch", "Authorization header is missing")
    body = b'{"jsonrpc": "2.0"}'
    target = f"{url}/request?a=1"
    ok = httpx.post(target, content=body, headers=_signed("POST", url, "/request?a=1", body), timeout=30)
    headers = seen_headers(ok)
    assert "authorization" not in headers and ok.json()["body"] == body.decode()
    wrong = httpx.post(target, content=body, headers=_signed("POST", url, "/request?a=1", body, "bad"))
    assert_error(wrong, 403, "SignatureNotMatch", "does not match")
    tampered = httpx.post(target, content=b"{}", headers=_signed("POST", url, "/request?a=1", body))
    assert_error(tampered, 403, "SignatureNotMatch", "x-acs-content-sha256")
    other = httpx.post(f"{url}/request?a=2", content=body, headers=_signed("POST", url, "/request?a=1", body))
    assert_error(other, 403, "SignatureNotMatch", "does not match")


def test_methods_are_checked_before_auth(sdk, key):
    url = deploy(sdk, "methods", jwt_config(key))
    assert_error(httpx.put(f"{url}/x"), 405, "MethodNotAllowed", "PUT")
