"""Helpers shared by the tests (conftest.py holds only fixtures and hooks, and no
test module imports another): the backend and its statement counts, the
ledger's invariants, the browser, the ledger's clock, the README's examples,
the REST API's extra and its schema, threads released together, worker
processes, and write conflicts injected the way databases raise them.

A conflict is made by the database itself where it can: PostgreSQL raises
SQLSTATE 40001 from a ``DO`` block, MariaDB error 1213 from ``SIGNAL``, both
through Django's cursor, exactly as a serialization failure or a Galera
certification failure arrives. SQLite has no such error; there the driver's
``OperationalError`` is raised with the SQLSTATE attribute psycopg would set,
so that the retry machinery (not the classification) is tested there too."""

from __future__ import annotations

import code
import datetime
import functools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

#: "sqlite", "postgresql" or "mysql": the backend this run tests.
BACKEND = connection.vendor

#: Statements a transfer's writes take on the generic locked path (captures,
#: reversals, sweeps): one data-modifying WITH on PostgreSQL, three elsewhere.
TRANSFER_WRITES = 1 if BACKEND == "postgresql" else 3
#: A whole plain transfer: on PostgreSQL one statement that locks, checks and
#: writes (accounts.pg_transfer); elsewhere the locking SELECT, then the writes.
TRANSFER_STATEMENTS = 1 if BACKEND == "postgresql" else 1 + TRANSFER_WRITES

needs_row_locks = pytest.mark.skipif(
    BACKEND == "sqlite",
    reason="SQLite has no row locks; concurrency is tested on PostgreSQL and MariaDB",
)

#: The checkout's root (the working directory of the worker processes).
ROOT = Path(__file__).resolve().parent.parent


#: The demo shop's test modules. The library's tests run without the shop
#: (tests/settings.py); these run as their own set, with tests/demo_settings.py,
#: which installs it. tests/conftest.py leaves each set's modules out of the
#: other's run.
DEMO_TESTS = frozenset(
    {
        "test_api_sandbox.py",
        "test_browser_shop.py",
        "test_sandbox.py",
        "test_shop.py",
        "test_shop_charts.py",
    }
)


# The ledger's invariants ------------------------------------------------------------


def ledger_totals() -> tuple[int, int, list[tuple[Any, Any]]]:
    """Counts and sums that must not change when an operation is refused."""
    from accounts.models import Account, Transaction, Transfer

    return (
        Transfer.objects.count(),
        Transaction.objects.count(),
        sorted(Account.objects.values_list("pk", "balance")),
    )


def ledger_state() -> tuple[int, int, list[tuple[Any, Any, Any, Any]]]:
    """What a refused operation must leave as it was: how many transfers and holds
    there are, and every account's balance, held amount and status."""
    from accounts.models import Account, Hold, Transfer

    return (
        Transfer.objects.count(),
        Hold.objects.count(),
        sorted(Account.objects.values_list("pk", "balance", "held", "status")),
    )


def assert_ledger_consistent() -> None:
    """The ledger checker finds nothing; and, checked again here in Python as
    an independent oracle (summing exactly, where SQLite's SUM adds floats):
    every currency sums to zero, every balance equals the sum of its legs,
    every transfer has two legs summing to zero, and balance_after is a
    running sum."""
    from decimal import Decimal

    from accounts.integrity import check_ledger
    from accounts.models import Account, Transaction, Transfer

    report = check_ledger()
    assert report.ok, report.problems
    by_currency: dict[Any, Decimal] = {}
    by_account: dict[Any, Decimal] = {}
    by_transfer: dict[Any, Decimal] = {}
    legs_of: dict[Any, int] = {}
    running: dict[Any, Decimal] = {}
    # Primary keys are assigned at insert, under the account's lock: posting order.
    for transfer_id, account_id, currency, amount, after in Transaction.objects.order_by(
        "pk"
    ).values_list("transfer", "account", "currency", "amount", "balance_after"):
        by_currency[currency] = by_currency.get(currency, Decimal(0)) + amount
        by_account[account_id] = by_account.get(account_id, Decimal(0)) + amount
        by_transfer[transfer_id] = by_transfer.get(transfer_id, Decimal(0)) + amount
        legs_of[transfer_id] = legs_of.get(transfer_id, 0) + 1
        running[account_id] = running.get(account_id, Decimal(0)) + amount
        assert running[account_id] == after, (account_id, running[account_id], after)
    assert all(total == 0 for total in by_currency.values()), by_currency
    assert all(total == 0 for total in by_transfer.values()), by_transfer
    assert set(legs_of.values()) <= {2}
    assert len(legs_of) == Transfer.objects.count()
    for pk, balance in Account.objects.values_list("pk", "balance"):
        assert balance == by_account.get(pk, Decimal(0)), (pk, balance, by_account.get(pk))


#: What support staff who edit accounts have in the admin (see the admin tests).
CLERK_PERMISSIONS = [
    "accounts.view_account",
    "accounts.add_account",
    "accounts.change_account",
    "accounts.view_transfer",
    "accounts.view_transaction",
]


# The browser tests ---------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the browser tests leave their screenshots.
ARTIFACTS = Path(os.environ.get("ACCOUNTS_TEST_ARTIFACTS") or ROOT / "artifacts")


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not shutil.which(CHROMIUM):
        return "Debian's chromium is not installed at %s (run make system-packages)" % CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    return None


def check_readable(page, chart, labels):
    """The chart is drawn, fits the window, and its ``labels`` are legible and apart."""
    box = chart.bounding_box()
    assert box is not None and box["width"] >= 600 and box["height"] >= 150, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    boxes = [label.bounding_box() for label in chart.locator(labels).all()]
    assert boxes, labels
    for found in boxes:
        assert found["height"] >= 11, found
    for i, one in enumerate(boxes):
        for other in boxes[i + 1 :]:
            apart = (
                one["x"] + one["width"] <= other["x"]
                or other["x"] + other["width"] <= one["x"]
                or one["y"] + one["height"] <= other["y"]
                or other["y"] + other["height"] <= one["y"]
            )
            assert apart, (one, other)


def screenshot(page, name):
    """Save a full-page screenshot of ``page`` to ARTIFACTS, named for the backend too."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / ("%s-%s.png" % (name, connection.vendor))
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


# The ledger's clock -------------------------------------------------------------------


@contextmanager
def ledger_time(moment: datetime.datetime) -> Iterator[None]:
    """Run code as if it were ``moment``, for the ledger and the application alike.

    The ledger takes its time from the database, under its locks, through
    ``accounts.clock.travelled``: that one function is wrapped, and
    ``django.utils.timezone.now`` (the application's clock) is set too.
    """
    if settings.USE_TZ and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    with (
        mock.patch("accounts.clock.travelled", return_value=moment),
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


#: The button that confirms an admin money form (accounts.admin_pages.CONFIRM).
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

README = ROOT / "README.rst"

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


def is_transaction_control(sql: str) -> bool:
    """BEGIN, COMMIT, ROLLBACK, SAVEPOINT or RELEASE: a statement that moves no data."""
    return sql.split(None, 1)[0].upper() in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def data_statements(queries: Any) -> list[str]:
    """The SQL of captured queries, without transaction control (BEGIN, SAVEPOINT, ...).

    Nor PostgreSQL's ``PREPARE`` and ``DEALLOCATE``: a statement is prepared
    once per connection and day (``accounts.pg_transfer``), whichever call
    happens to come first.
    """
    return [
        q["sql"]
        for q in queries.captured_queries
        if not is_transaction_control(q["sql"]) and not q["sql"].startswith(_PREPARING)
    ]


_PREPARING = ("PREPARE ", "DEALLOCATE ")


def statement_verbs(call: Any) -> list[str]:
    """The first word of each statement ``call`` sends (``EXECUTE``...), savepoints left out."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        call()
    found = [q["sql"].split("(")[0].split()[0].upper() for q in queries]
    return [verb for verb in found if verb not in ("SAVEPOINT", "RELEASE")]


def run_concurrently(count: int, work: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Run ``work(i)`` in ``count`` threads released at the same moment, each with its
    own database connection.

    Returns (results, refusals, unexpected): return values, ``AccountException``s,
    and any other exception (a deadlock would land there).
    """

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


def worker(*args: Any) -> subprocess.Popen[str]:
    """Start ``python -m tests.workers <args>`` (a separate process with its own connection)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


# Write conflicts, made by the database itself (tests/test_retry.py) -------------------

CONFLICT_SQL = {
    "postgresql": (
        "DO $$ BEGIN RAISE EXCEPTION 'injected write conflict' USING ERRCODE = '40001'; END $$"
    ),
    "mysql": (
        "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'injected write conflict'"
    ),
}

#: Another error, that is no conflict: a unique violation.
OTHER_ERROR_SQL = {
    "postgresql": (
        "DO $$ BEGIN RAISE EXCEPTION 'injected other error' USING ERRCODE = '23505'; END $$"
    ),
    "mysql": (
        "SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1062, MESSAGE_TEXT = 'injected other error'"
    ),
}


class SQLiteConflict(sqlite3.OperationalError):
    """What a conflict would look like from a driver that reports SQLSTATEs."""

    sqlstate = "40001"


def raise_from_database(sql: dict[str, str], execute: Any = None, context: Any = None) -> None:
    """Have the database raise the error ``sql`` makes (SQLite: raise it as its driver would)."""
    if connection.vendor == "sqlite":
        with connection.wrap_database_errors:
            if sql is OTHER_ERROR_SQL:
                raise sqlite3.IntegrityError("injected other error")
            raise SQLiteConflict("injected write conflict")
    if execute is not None:
        execute(sql[connection.vendor], None, False, context)
        return
    with connection.wrap_database_errors:
        connection.connection.cursor().execute(sql[connection.vendor])


def is_write(sql: str) -> bool:
    """A statement that writes (PostgreSQL's one-statement transfer, prepared, too)."""
    return sql.lstrip().upper().startswith(("INSERT", "UPDATE", "WITH", "EXECUTE ACCOUNTS_"))


class Injector:
    """How many conflicts are left to inject, and how many were."""

    def __init__(self, times: int, sql: dict[str, str]) -> None:
        self.left = times
        self.injected = 0
        self.sql = sql

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.injected += 1
        return True


@contextmanager
def conflicts(
    times: int, *, at: str = "write", sql: dict[str, str] = CONFLICT_SQL
) -> Iterator[Injector]:
    """Make the next ``times`` writes (``at="write"``) or commits (``at="commit"``) fail.

    Each failure is the database's write-conflict error (``sql``: another
    error instead), raised in place of the statement or before the commit;
    Django then rolls the transaction back as it would after a real one.
    """
    injector = Injector(times, sql)
    if at == "write":

        def wrapper(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
            if is_write(statement) and injector.take():
                raise_from_database(injector.sql, execute, context)
            return execute(statement, params, many, context)

        with connection.execute_wrapper(wrapper):
            yield injector
    elif at == "commit":
        commit = connection._commit

        def failing_commit() -> Any:
            if injector.take():
                raise_from_database(injector.sql)
            return commit()

        connection._commit = failing_commit
        try:
            yield injector
        finally:
            del connection._commit
    else:
        raise ValueError(at)


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


def wait_for_lock_wait(statement_like: str) -> bool:
    """Block until another connection's statement (SQL ``LIKE statement_like``) waits for a
    row lock on the test database; False after about 30 s without one.

    Polled from this thread's connection, inside a transaction or not
    (PostgreSQL's snapshot of its activity view is cleared before each
    look). PostgreSQL and MariaDB only.
    """
    from django.db import connections

    connection = connections["default"]
    with connection.cursor() as cursor:
        for _ in range(600):
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database() AND query LIKE %s",
                    [statement_like],
                )
            else:
                # A statement still running after a while: InnoDB does not
                # always list a transaction waiting for a row as "LOCK WAIT".
                cursor.execute(
                    "SELECT count(*) FROM information_schema.processlist"
                    " WHERE id != CONNECTION_ID() AND db = DATABASE() AND info LIKE %s"
                    " AND time_ms > 200",
                    [statement_like],
                )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False
