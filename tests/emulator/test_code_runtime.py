"""The emulator's model of code-package functions (issue 23 #4), through the official SDK: each invalid
custom-runtime spec the reference lists is refused; a valid one reports codeChecksum/codeSize; official
layers answer GetLayerVersionByArn in their region only."""

from __future__ import annotations

import base64
import io
import stat
import zipfile
from typing import Any

import pytest
from alibabacloud_fc20230330 import models as fc
from Tea.exceptions import TeaException

from fc_emulator.codepackage import MAX_ZIP_BASE64

PY312 = "acs:fc:cn-hangzhou:official:layers/Python312/versions/1"


def zip_b64(files: dict[str, bytes], link: str | None = None) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "target")
    return base64.b64encode(buf.getvalue()).decode()


GOOD_ZIP = zip_b64({"bootstrap": b"#!/bin/sh\n"})


def code_function(name: str, **overrides: Any) -> fc.CreateFunctionInput:
    values: dict[str, Any] = dict(
        function_name=name,
        runtime="custom.debian12",
        handler="index.handler",
        memory_size=512,
        cpu=0.5,
        code=fc.InputCodeLocation(zip_file=GOOD_ZIP),
        layers=[PY312],
        custom_runtime_config=fc.CustomRuntimeConfig(
            command=["/opt/python3.12/bin/python3"], args=["-I", "/code/app.py"], port=8080
        ),
    )
    values.update(overrides)
    return fc.CreateFunctionInput(**{k: v for k, v in values.items() if v is not None})


def refused(client, body: fc.CreateFunctionInput) -> str:
    with pytest.raises(TeaException) as info:
        client.create_function(fc.CreateFunctionRequest(body=body))
    assert info.value.code == "InvalidArgument", info.value
    return str(info.value.message)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"code": None}, "Either ossBucketName/ossObjectName or zipFile must be set"),
        ({"code": fc.InputCodeLocation()}, "Either ossBucketName/ossObjectName or zipFile must be set"),
        (
            {"code": fc.InputCodeLocation(zip_file=GOOD_ZIP, oss_bucket_name="b", oss_object_name="o")},
            "Either ossBucketName/ossObjectName or zipFile must be set",
        ),
        ({"handler": None}, "Handler is required"),
        (
            {"custom_runtime_config": fc.CustomRuntimeConfig(command=["/code/x"], args=[], port=8080)},
            "args must not be empty",
        ),
        ({"layers": ["acs:fc:cn-hangzhou:official:layers/Python312"]}, "not a layer version ARN"),
        ({"layers": ["acs:fc:cn-shanghai:official:layers/Python312/versions/1"]}, "not the function's"),
        ({"runtime": "custom.debian11"}, "not compatible with runtime custom.debian11"),
        ({"layers": ["acs:fc:cn-hangzhou:official:layers/Nodejs18/versions/3"]}, "not compatible"),
        ({"code": fc.InputCodeLocation(zip_file=zip_b64({"a": b"1"}, link="l"))}, "symbolic link"),
        ({"code": fc.InputCodeLocation(zip_file=GOOD_ZIP, checksum="1")}, "does not match"),
        ({"code": fc.InputCodeLocation(zip_file="A" * (MAX_ZIP_BASE64 + 4))}, "over the 100 MB limit"),
    ],
    ids=[
        "no-code",
        "empty-code",
        "two-locations",
        "no-handler",
        "empty-args",
        "bad-arn",
        "other-region-layer",
        "python312-on-debian11",
        "debian10-only-layer",
        "symlink",
        "checksum",
        "too-large",
    ],
)
def test_invalid_code_functions_are_refused(client, overrides, said):
    assert said.lower() in refused(client, code_function("code-bad", **overrides)).lower()


def test_a_code_function_reports_its_checksum_and_size_and_layers_answer_in_their_region(client):
    client.create_function(fc.CreateFunctionRequest(body=code_function("code-good")))
    body = client.get_function("code-good", fc.GetFunctionRequest()).body
    assert body.code_size == len(base64.b64decode(GOOD_ZIP)) and body.code_checksum.isdigit()
    assert [layer.arn for layer in body.layers] == [PY312]
    layer = client.get_layer_version_by_arn(PY312).body
    assert layer.layer_name == "Python312" and layer.compatible_runtime == ["custom.debian12"]
    with pytest.raises(TeaException) as info:
        client.get_layer_version_by_arn(PY312.replace("cn-hangzhou", "cn-beijing"))
    assert info.value.statusCode == 404
