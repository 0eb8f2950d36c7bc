"""Fixtures shared by the whole suite."""

import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import Client

import accounts
from accounts import facade
from accounts.integrity import check_ledger
from accounts.models import Account, Transaction, Transfer

from .factories import AccountFactory, StaffFactory, UserFactory

BACKEND = connection.vendor  # "sqlite", "postgresql" or "mysql"

#: Statements a transfer's writes take on the generic locked path (captures,
#: reversals, sweeps): one data-modifying WITH on PostgreSQL, three elsewhere.
TRANSFER_WRITES = 1 if BACKEND == "postgresql" else 3
#: A whole plain transfer: on PostgreSQL one statement that locks, checks and
#: writes (accounts.pg_transfer); elsewhere the locking SELECT, then the writes.
TRANSFER_STATEMENTS = 1 if BACKEND == "postgresql" else 1 + TRANSFER_WRITES

needs_row_locks = pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has no row locks; concurrency is tested on PostgreSQL and MariaDB",
)


def pytest_report_header(config):
    return "accounts: %s, database: %s" % (Path(accounts.__file__).parent, connection.vendor)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff_member(db):
    return UserFactory(username="staff", is_staff=True)


@pytest.fixture
def source(db):
    """The core source account of the default currency (no credit limit)."""
    return Account.objects.source_account()


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def fund(source):
    """fund(account, "10.00"): top up an account from the source of its currency."""

    def fund(account, amount):
        bank = Account.objects.source_account(account.currency)
        return facade.transfer(bank, account, Decimal(amount))

    return fund


def ledger_totals():
    """Counts and sums that must not change when an operation is refused."""
    return (
        Transfer.objects.count(),
        Transaction.objects.count(),
        sorted(Account.objects.values_list("pk", "balance")),
    )


def assert_ledger_consistent():
    """The ledger checker finds nothing; and, checked again here in Python as
    an independent oracle (summing exactly, where SQLite's SUM adds floats):
    every currency sums to zero, every balance equals the sum of its legs,
    every transfer has two legs summing to zero, and balance_after is a
    running sum."""
    report = check_ledger()
    assert report.ok, report.problems
    by_currency, by_account, by_transfer, legs_of = {}, {}, {}, {}
    running = {}
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


@pytest.fixture
def clerk(db):
    """Staff who may edit accounts but not move money."""
    return StaffFactory(username="clerk", permissions=CLERK_PERMISSIONS)


@pytest.fixture
def cashier(db):
    """Staff who may edit accounts and move money (accounts.move_money)."""
    return StaffFactory(
        username="cashier", permissions=[*CLERK_PERMISSIONS, "accounts.move_money"]
    )


@pytest.fixture
def clerk_client(clerk):
    client = Client()
    client.force_login(clerk)
    return client


@pytest.fixture
def cashier_client(cashier):
    client = Client()
    client.force_login(cashier)
    return client


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
ARTIFACTS = Path(
    os.environ.get("ACCOUNTS_TEST_ARTIFACTS")
    or Path(__file__).resolve().parent.parent / "artifacts"
)


def browser_missing():
    """Why the browser test cannot run here, or None."""
    if not shutil.which(CHROMIUM):
        return "Debian's chromium is not installed at %s (run make system-packages)" % CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    return None


@pytest.fixture
def page(monkeypatch):
    """A page in a real headless Chromium (Debian's), through Playwright."""
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason + "; CI=true needs the browser test to run")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()
            # With that loop running, Django keeps the test's database
            # connections apart from the thread's usual ones; close them
            # while they are still reachable, or PostgreSQL cannot drop the
            # test database at the end of the run.
            connections.close_all()
