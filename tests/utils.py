"""Helpers shared by the tests (never imported from conftest.py): the ledger's clock,
the REST API's extra and its schema, responses checked against it."""

from __future__ import annotations

import datetime
import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone


@contextmanager
def ledger_time(moment: datetime.datetime) -> Iterator[None]:
    """Run code as if it were ``moment``, for the ledger and the application alike.

    The ledger takes its time from the database, under its locks, through
    ``accounts.clock.from_database``: that one function is wrapped, and
    ``django.utils.timezone.now`` (the application's clock) is set too.
    """
    if settings.USE_TZ and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    with (
        mock.patch("accounts.clock.from_database", return_value=moment),
        mock.patch("django.utils.timezone.now", return_value=moment),
    ):
        yield


def require_api():
    """Skip the calling test module when the "api" extra is not installed (fail under CI=true)."""
    from django.conf import settings

    if settings.API_INSTALLED:
        return
    reason = "the REST API's extra is not installed (pip install django-managed-accounts[api])"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(reason + "; CI=true needs the API's tests to run", pytrace=False)
    pytest.skip(reason + ": the API's tests are skipped", allow_module_level=True)


@functools.cache
def api_schema():
    """The project's OpenAPI schema, as drf-spectacular generates it (a dict)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def json_schema(node):
    """An OpenAPI 3.0 schema as plain JSON Schema, stricter where the API promises more.

    ``nullable: true`` becomes "or null" (the OpenAPI 3.0 meaning, also next
    to ``allOf``, which JSON Schema validators do not know), and an object
    with listed properties admits no others: a response carrying a field the
    schema does not document fails.
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: json_schema(value)
        for key, value in node.items()
        if key not in ("nullable", "readOnly", "writeOnly", "example", "examples")
    }
    if "properties" in node and "additionalProperties" not in node:
        converted["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@functools.cache
def _components():
    return json_schema(api_schema()["components"])


def operation(method, path):
    """The schema's operation for ``method`` on a concrete ``path`` (its template matched)."""
    for template, operations in api_schema()["paths"].items():
        pattern = "^%s$" % re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.match(pattern, path) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError("%s %s is not in the API's schema" % (method, path))


def check_against_schema(response):
    """Fail unless the response's status is documented for its operation and its body fits."""
    import jsonschema

    request = response.request
    op = operation(request["REQUEST_METHOD"], request["PATH_INFO"])
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, "%s %s answered %s, which its schema does not document" % (
        request["REQUEST_METHOD"],
        request["PATH_INFO"],
        response.status_code,
    )
    body_schema = json_schema(documented["content"]["application/json"]["schema"])
    validator = jsonschema.Draft202012Validator({**body_schema, "components": _components()})
    errors = sorted(validator.iter_errors(response.json()), key=str)
    assert not errors, "%s %s %s: %s" % (
        request["REQUEST_METHOD"],
        request["PATH_INFO"],
        response.status_code,
        "; ".join("%s at %s" % (e.message, list(e.absolute_path)) for e in errors),
    )
    return response


def check_error_body(body):
    """Fail unless ``body`` fits the schema's Error component; return it."""
    import jsonschema

    schema = {"$ref": "#/components/schemas/Error", "components": _components()}
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


def checked_client_class():
    """An ``APIClient`` whose every response is checked against the schema."""
    from rest_framework.test import APIClient

    class CheckedAPIClient(APIClient):
        def request(self, **kwargs):
            response = super().request(**kwargs)
            if response["Content-Type"].startswith("application/json"):
                check_against_schema(response)
            else:
                raise AssertionError("not JSON: %s" % response["Content-Type"])
            return response

    return CheckedAPIClient
