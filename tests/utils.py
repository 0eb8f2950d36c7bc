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


# A ledger with a known history, for the reports, exports and charts -------------------------


def at(day, hour=12, minute=0):
    """An aware moment on a 2026 day given as "MM-DD", in the current time zone."""
    month, date = (int(part) for part in day.split("-"))
    return timezone.make_aware(datetime.datetime(2026, month, date, hour, minute))


def build_report_ledger():
    """A small ledger, January to March 2026 (GMT, so days are the same in UTC).

    Types: "Customer money" with "Gift cards" and "Wallets" below it. GBP
    accounts: gift1 and gift2 (gift cards), wallet (a wallet with a £50
    credit limit), credit (no type); EUR: euro (a wallet). Returns the
    accounts by name and the transfers by what they did. The figures it
    leads to are written out in tests/test_reports.py.
    """
    from decimal import Decimal

    from accounts import facade
    from accounts.models import Account, AccountType

    with ledger_time(at("01-01", 9)):
        parent = AccountType.objects.create(name="Customer money", code="customer-money")
        gift = AccountType.objects.create(name="Gift cards", code="gift-cards", parent=parent)
        wallets = AccountType.objects.create(name="Wallets", code="wallets", parent=parent)
        opened = {"created": at("01-01", 9)}
        accounts = {
            "gift1": Account.objects.create(name="Gift card 1", account_type=gift, **opened),
            "gift2": Account.objects.create(
                name="Gift card 2",
                account_type=gift,
                end_date=datetime.date(2026, 2, 28),
                **opened,
            ),
            "wallet": Account.objects.create(
                name="Wallet", account_type=wallets, credit_limit=Decimal("50.00"), **opened
            ),
            "credit": Account.objects.create(name="Store credit", **opened),
            "euro": Account.objects.create(
                name="Euro wallet", account_type=wallets, currency="EUR", **opened
            ),
        }
    named = {
        **accounts,
        "source": Account.objects.source_account("GBP"),
        "sales": Account.objects.sales_account("GBP"),
        "euro_source": Account.objects.source_account("EUR"),
    }
    # (name, day, what, from or transfer, to, amount)
    steps = [
        ("top_up_gift1", "01-05", "transfer", "source", "gift1", "100.00"),
        ("top_up_gift2", "01-06", "transfer", "source", "gift2", "30.00"),
        ("top_up_wallet", "01-07", "transfer", "source", "wallet", "20.00"),
        ("spend_gift1", "01-10", "transfer", "gift1", "sales", "40.10"),
        ("refund_gift1", "01-12", "reverse", "spend_gift1", None, "10.05"),
        ("spend_wallet", "01-15", "transfer", "wallet", "sales", "45.00"),
        ("gift1_to_credit", "01-20", "transfer", "gift1", "credit", "5.00"),
        ("euro_1", "02-02", "transfer", "euro_source", "euro", "0.10"),
        ("euro_2", "02-02", "transfer", "euro_source", "euro", "0.20"),
        ("credit_1", "02-03", "transfer", "source", "credit", "0.10"),
        ("credit_2", "02-04", "transfer", "source", "credit", "0.20"),
        ("withdraw_gift2", "02-10", "transfer", "gift2", "source", "5.00"),
        ("reverse_wallet_top_up", "02-15", "reverse", "top_up_wallet", None, "5.00"),
        ("expire_gift2", "03-01", "expire", "gift2", None, None),
    ]
    done = {}
    for name, day, what, first, second, amount in steps:
        with ledger_time(at(day)):
            if what == "transfer":
                done[name] = facade.transfer(named[first], named[second], Decimal(amount))
            elif what == "reverse":
                done[name] = facade.reverse(done[first], amount=Decimal(amount))
            else:
                done[name] = facade.expire_account(named[first]).transfer
    for account in accounts.values():
        account.refresh_from_db()
    return accounts, done
