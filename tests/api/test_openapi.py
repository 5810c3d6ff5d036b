"""The served OpenAPI document describes exactly the routes this server answers."""

from __future__ import annotations

import re

import httpx

from conftest import ACCOUNT
from stepline.api.openapi import openapi_document

FAILURE_REF = "#/components/schemas/ApiResponseFailure"


def operations() -> list[tuple[str, str, dict[str, object]]]:
    document = openapi_document()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_document_is_openapi_3_with_a_relative_server() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.0.3"
    assert document["servers"] == [{"url": "/client/v4"}]
    assert len(operations()) == 19


def test_every_operation_declares_every_failure_in_the_envelope() -> None:
    for _, _, operation in operations():
        responses = operation["responses"]
        assert isinstance(responses, dict)
        for status in ("200", "400", "401", "403", "404", "409", "413", "429", "500", "503"):
            assert status in responses
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"] == FAILURE_REF


def test_every_reference_resolves() -> None:
    document = openapi_document()
    text = str(document)
    for ref in set(re.findall(r"'#/components/(\w+)/(\w+)'", text)):
        section, name = ref
        assert name in document["components"][section], ref


async def test_every_documented_operation_is_routed(http: httpx.AsyncClient) -> None:
    for method, template, _ in operations():
        path = "/client/v4" + template.format(
            account_id=ACCOUNT,
            workflow_name="my-workflow",
            instance_id="inst-1",
            event_type="approval",
            version_id="00000000-0000-0000-0000-000000000000",
        )
        response = await http.request(method, path)
        codes = [error["code"] for error in response.json()["errors"]]
        assert 7003 not in codes and 7001 not in codes, (method, template, codes)


async def test_the_document_is_served_without_credentials(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/client/v4/openapi.json")
    assert response.json() == openapi_document()
