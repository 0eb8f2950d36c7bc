"""Fixtures shared by the whole suite (and pytest hooks); helpers are in utils.py."""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection, connections
from django.test import Client

import accounts
from accounts import facade
from accounts.codes import generate_code
from accounts.models import Account

from .factories import AccountFactory, StaffFactory, UserFactory
from .utils import CHROMIUM, CHROMIUM_FLAGS, CLERK_PERMISSIONS, DEMO_TESTS, browser_missing


def demo_shop_installed():
    return "sandbox.shop" in settings.INSTALLED_APPS


def pytest_report_header(config):
    return [
        "accounts: %s, database: %s" % (Path(accounts.__file__).parent, connection.vendor),
        (
            "the demo shop's tests only (tests/demo_settings.py)"
            if demo_shop_installed()
            else "the library's tests (the demo shop's: --ds tests.demo_settings)"
        ),
    ]


def in_the_other_set(path):
    """A test module of the set this run does not run (see DEMO_TESTS)."""
    is_test = path.suffix == ".py" and path.name.startswith("test_")
    return is_test and (path.name in DEMO_TESTS) != demo_shop_installed()


def pytest_ignore_collect(collection_path, config):
    """Leave the other set's modules out when collecting a directory."""
    return True if in_the_other_set(collection_path) else None


class OtherSet(pytest.Module):
    """A module of the other set named on the command line: skipped, saying why."""

    def collect(self):
        if demo_shop_installed():
            pytest.skip("a library test: it runs with tests/settings.py, without the demo shop")
        pytest.skip("a demo shop test: it runs with --ds tests.demo_settings (runtests.py does)")


def pytest_pycollect_makemodule(module_path, parent):
    """Named on the command line, the other set's modules are skipped (never imported)."""
    if in_the_other_set(module_path):
        return OtherSet.from_parent(parent, path=module_path)
    return None


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


@pytest.fixture
def sales(db):
    """The core sales account of the default currency."""
    return Account.objects.sales_account()


@pytest.fixture
def wallet(fund):
    """An account with £100.00 on it and the default credit limit."""
    account = AccountFactory()
    fund(account, "100.00")
    return account


@pytest.fixture
def purchase_and_hold(fund):
    """(wallet, shop, purchase, hold): a wallet with £100.00 paid £50.00 to a shop
    (``purchase``, a transfer to reverse) and holds £10.00 for it (``hold``)."""
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    purchase = facade.transfer(wallet, shop, Decimal("50.00"))
    hold = facade.hold(wallet, shop, Decimal("10.00"))
    return wallet, shop, purchase, hold


@pytest.fixture
def card(fund):
    """A gift card: an unnamed account with a code and £25.00 on it."""
    card = AccountFactory(name=None, code=generate_code())
    fund(card, "25.00")
    return card


@pytest.fixture
def empty_caches():
    """Failed code lookups are counted in the cache, which outlives a test: start afresh."""
    for cache in caches.all(initialized_only=True):
        cache.clear()
    yield
    for cache in caches.all(initialized_only=True):
        cache.clear()


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
