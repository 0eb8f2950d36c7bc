"""Helpers shared by the tests (never imported from conftest.py): the ledger's clock,
the README's examples, the REST API's extra and its schema."""

from __future__ import annotations

import code
import datetime
import functools
import json
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
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


#: The button that confirms an admin money form (accounts.admin.CONFIRM).
CONFIRM = "_confirm"


def review(client: Any, url: str, data: dict[str, Any]) -> Any:
    """Post an admin money form's first step: the confirmation page, or the form with errors."""
    return client.post(url, data)


def move_money(client: Any, url: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Post an admin money form as a browser does: the form, then its confirmation.

    Returns the form's response when it has errors (nothing to confirm),
    else the response to the confirmation, which posts exactly the values
    the confirmation page carried.
    """
    page = review(client, url, data)
    if page.status_code != 200 or not page.context.get("confirming"):
        return page
    return client.post(url, confirmed_data(page), **kwargs)


def confirmed_data(page: Any) -> dict[str, Any]:
    """What the confirm button of a confirmation page posts."""
    data: dict[str, Any] = {}
    for name, value in page.context["carried"]:
        data.setdefault(name, []).append(value)
    data[CONFIRM] = "1"
    return data


# The README, pasted into a shell ----------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.rst"

#: A claim in a comment that the line's value can be checked against.
MONEY_CLAIM = re.compile(r'Money\("(-?[0-9.]+)", "([A-Z]{3})"\)')


def python_blocks(text: str | None = None) -> list[tuple[int, str]]:
    """Every ``.. code-block:: python`` of the README, in order, with its first line's number."""
    if text is None:
        text = README.read_text(encoding="utf-8")
    blocks = []
    pattern = re.compile(r"^( *)\.\. code-block:: python\n\n((?:\1    .*\n|[ \t]*\n)+)", re.M)
    for match in pattern.finditer(text):
        indent = len(match.group(1)) + 4
        lines = [line[indent:] for line in match.group(2).rstrip().splitlines()]
        first = text[: match.start(2)].count("\n") + 1
        blocks.append((first, "\n".join(lines) + "\n"))
    return blocks


class PastedConsole(code.InteractiveConsole):
    """What ``manage.py shell`` gives: an interactive console, here typed into line by line.

    Starts with an empty namespace (nothing injected), records every
    traceback and syntax error, and checks each claim a comment makes about
    the value a line shows: ``x.balance   # Money("10.00", "GBP")`` must show
    that Money, ``... # True`` must show True.
    """

    def __init__(self) -> None:
        super().__init__({"__name__": "__console__", "__doc__": None}, filename="<console>")
        self.failures: list[str] = []
        self.where = ""
        self.shown: list[Any] = []

    def showtraceback(self) -> None:
        self.failures.append("%s\n%s" % (self.where, traceback.format_exc()))

    def showsyntaxerror(self, *args: Any, **kwargs: Any) -> None:
        self.failures.append("%s\n%s" % (self.where, traceback.format_exc(limit=0)))

    def paste(self, first_line: int, block: str) -> None:
        """Type ``block`` line by line, as a paste does, then Enter once more."""
        hook = sys.displayhook
        sys.displayhook = self.shown.append
        try:
            more = False
            for offset, line in enumerate(block.splitlines()):
                self.where = "README.rst line %d: %s" % (first_line + offset, line)
                self.shown.clear()
                more = self.push(line)
                if not more:
                    self.check_claim(line)
            if more:
                self.push("")
        finally:
            sys.displayhook = hook

    def check_claim(self, line: str) -> None:
        code_part, _hash, comment = line.partition("#")
        if not comment or not code_part.strip() or "=" in code_part:
            return
        from djmoney.money import Money

        claim = MONEY_CLAIM.search(comment)
        if claim is not None:
            expected: Any = Money(claim.group(1), claim.group(2))
        elif comment.strip().split(":")[0].split(" ")[0] in ("True", "False"):
            expected = comment.strip().startswith("True")
        else:
            return
        if (
            len(self.shown) != 1
            or type(self.shown[0]) is not type(expected)
            or (self.shown[0] != expected)
        ):
            self.failures.append("%s\nshows %r, the comment says %r" % (self.where, self.shown,
                                                                        expected))  # fmt: skip


def paste_readme() -> PastedConsole:
    """Paste every Python block of the README, in order, into a fresh console."""
    console = PastedConsole()
    for first_line, block in python_blocks():
        console.paste(first_line, block)
    return console


def paste_readme_and_report() -> None:
    """For ``manage.py shell -c``: paste the README and print what went wrong, as JSON."""
    console = paste_readme()
    print(json.dumps({"failures": console.failures}))  # noqa: T201


# Collecting debts -------------------------------------------------------------------


def moment(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime.datetime:
    """An aware moment in the current time zone (the suite's: Europe/London)."""
    return timezone.make_aware(datetime.datetime(year, month, day, hour, minute))


def data_statements(queries: Any) -> list[str]:
    """The SQL of captured queries, without transaction control (BEGIN, SAVEPOINT, ...)."""
    control = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
    return [q["sql"] for q in queries.captured_queries if q["sql"].split(None, 1)[0].upper()
            not in control]  # fmt: skip


def run_concurrently(count: int, work: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Run ``work(i)`` in ``count`` threads released at the same moment, each with its
    own database connection.

    Returns (results, refusals, unexpected): return values, ``AccountException``s,
    and any other exception (a deadlock would land there).
    """
    import threading

    from django.db import connections

    from accounts.exceptions import AccountException

    barrier = threading.Barrier(count)
    lock = threading.Lock()
    results: list[Any] = []
    refusals: list[Any] = []
    unexpected: list[Any] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcome = work(i)
            with lock:
                results.append(outcome)
        except AccountException as exc:
            with lock:
                refusals.append(exc)
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty
            with lock:
                unexpected.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results, refusals, unexpected
