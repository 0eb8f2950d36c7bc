"""The REST API's OpenAPI schema: valid, complete, and with every error documented."""

import re

import pytest

from .utils import require_api

require_api()

from django.urls import URLPattern, URLResolver, get_resolver  # noqa: E402
from openapi_spec_validator import validate  # noqa: E402

from accounts.api.errors import CODES, LEDGER_ERRORS  # noqa: E402

from .utils import api_schema  # noqa: E402

PREFIX = "/api/accounts/"


def api_paths():
    """Every URL of accounts.api.urls as an OpenAPI path template, with its view."""
    found = {}
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "accounts_api":
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern)
                route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
                found[PREFIX + route.replace("{pk}", "{id}")] = pattern.callback.cls
    return found


def operations():
    for path, methods in api_schema()["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_schema_is_a_valid_openapi_3_document():
    schema = api_schema()
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_every_endpoint_and_method_is_in_the_schema():
    documented = {(path, method) for path, method, _ in operations() if path.startswith(PREFIX)}
    expected = set()
    for path, view in api_paths().items():
        for method in ("get", "post"):
            if hasattr(view, method):
                expected.add((path, method))
    assert documented == expected
    assert len(expected) == 15


@pytest.mark.parametrize(("path", "method", "operation"), list(operations()))
def test_every_operation_is_described_with_its_parameters(path, method, operation):
    assert operation["summary"] and operation["description"]
    assert not operation["description"].startswith("Base of")
    for parameter in operation.get("parameters", []):
        assert parameter.get("description") or parameter["schema"].get("enum"), parameter
    for name in re.findall(r"{(\w+)}", path):
        assert name in [p["name"] for p in operation["parameters"] if p["in"] == "path"]
    if method == "post" and not path.endswith("/release/"):  # a release has no fields
        body = operation["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].startswith("#/components/schemas/")


@pytest.mark.parametrize(("path", "method", "operation"), list(operations()))
def test_every_error_response_lists_its_codes_with_an_example_of_each(path, method, operation):
    for status, response in operation["responses"].items():
        if int(status) < 400:
            continue
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}
        examples = content["examples"]
        listed = re.findall(r"``(\w+)``", response["description"])
        assert listed and sorted(e["value"]["code"] for e in examples.values()) == sorted(listed)
        for code in listed:
            assert CODES[code].status == int(status), (code, status)


def test_every_error_code_is_in_the_errors_enum_and_answered_somewhere():
    schema = api_schema()
    enum = schema["components"]["schemas"]["CodeEnum"]["enum"]
    assert sorted(enum) == sorted(CODES)
    answered = set()
    for _path, _method, operation in operations():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                answered |= set(re.findall(r"``(\w+)``", response["description"]))
    # Codes no endpoint of today can produce: ledger errors of other operations
    # (kept so that every exception class has its code) and DRF's generic ones.
    unused = {
        "refused",
        "invalid_account",
        "unsupported_currency",
        "account_inactive",
        "hold_error",
        "account_not_empty",
        "protected_account",
        "code_generation_failed",
        "ledger_immutable",
        # Collecting debts: no endpoint of the API collects yet.
        "invalid_collection_period",
        "collection_before_freeze",
        "invalid_collection_source",
        "mixed_currency_scope",
        "collection_error",
        "collection_run_conflict",
        "collection_run_not_due",
        "debt_resolved",
        "settlement_exceeds_debt",
        "method_not_allowed",
        "not_acceptable",
        "throttled",
    }
    assert set(CODES) - answered == unused
    assert {kind.code for kind in LEDGER_ERRORS.values()} <= set(CODES)


def test_money_is_a_decimal_string_with_its_currency_in_the_schema():
    money = api_schema()["components"]["schemas"]["Money"]
    assert money["properties"]["amount"]["type"] == "string"
    assert money["required"] == ["amount", "currency"]
    request = api_schema()["components"]["schemas"]["TransferRequest"]
    assert request["properties"]["amount"]["type"] == "string"
    assert request["properties"]["amount"]["pattern"]
