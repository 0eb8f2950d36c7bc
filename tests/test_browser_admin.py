"""Finance staff in the admin, in a real headless Chromium at 1280 pixels.

What a screenshot shows and a test client cannot: which columns are on
screen without scrolling, whether an amount wraps. Skipped (or, with
CI=true, failed) like ``test_browser.py``; screenshots go to ``artifacts/``.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts import facade
from accounts.codes import generate_code
from accounts.models import Account

from .factories import AccountFactory, StaffFactory, UserFactory
from .utils import ARTIFACTS, CLERK_PERMISSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280


def log_in(page, live_server, username, permissions):
    StaffFactory(username=username, permissions=permissions)
    admin = live_server.url + "/admin/"
    page.goto(admin + "login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "staff")
    page.click("input[type=submit]")
    page.wait_for_url(admin)


def on_screen(page, selector):
    """Whether the element is within the 1280-pixel viewport, with nothing scrolled."""
    box = page.locator(selector).first.bounding_box()
    scrolled = page.evaluate(
        "() => (document.querySelector('.results') || {}).scrollLeft || window.scrollX"
    )
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH and not scrolled


def lines(page, selector):
    """How many lines the element's text takes (an inline element gives one box per line)."""
    return page.locator(selector).first.evaluate("el => el.getClientRects().length")


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / ("%s-%s.png" % (name, connection.vendor))
    page.screenshot(path=str(path))
    assert path.stat().st_size > 0


def test_the_account_list_shows_the_money_first_at_1280_pixels(live_server, page):
    owner = UserFactory(username="a-customer-with-a-long-username")
    debtor = AccountFactory(
        name="Acme Trading Ltd, invoicing department", credit_limit=Decimal("5000.00")
    )
    facade.transfer(debtor, Account.objects.sales_account(), Decimal("1265.50"))
    for _n in range(3):
        AccountFactory(name=None, code=generate_code(), primary_user=owner)
    log_in(page, live_server, "cashier", [*CLERK_PERMISSIONS, "accounts.move_money"])

    page.goto(live_server.url + reverse("admin:accounts_account_changelist"))

    for column in ("balance_money", "held_money", "credit_limit_money", "status"):
        assert on_screen(page, "th.column-%s" % column), column
    # The source of money says so; a debt never breaks after its minus sign.
    bank = page.locator("#result_list tr", has_text="Bank (GBP)")
    assert bank.locator("td.field-credit_limit_money").inner_text() == "no limit"
    debt = "#result_list tr:has-text('Acme Trading') td.field-balance_money span"
    assert page.inner_text(debt) == "-£1,265.50"
    assert lines(page, debt) == 1
    screenshot(page, "admin-account-list")

    # At 1920 pixels too (the original report: wrapping even there).
    page.set_viewport_size({"width": 1920, "height": 900})
    assert lines(page, debt) == 1


def test_the_hold_list_shows_amount_status_and_expiry_at_1280_pixels(live_server, page):
    wallet = AccountFactory(name="Household wallet with a long name")
    facade.transfer(Account.objects.source_account(), wallet, Decimal("100.00"))
    facade.hold(
        wallet,
        Account.objects.sales_account(),
        Decimal("34.00"),
        expires_at=timezone.now() + timezone.timedelta(days=3),
        merchant_reference="click-and-collect-0042",
    )
    log_in(page, live_server, "cashier", [*CLERK_PERMISSIONS, "accounts.view_hold",
                                          "accounts.move_money"])  # fmt: skip

    page.goto(live_server.url + reverse("admin:accounts_hold_changelist"))

    for column in ("amount_money", "status", "expires_at"):
        assert on_screen(page, "th.column-%s" % column), column
    screenshot(page, "admin-hold-list")


def test_staff_without_the_money_permission_get_a_403_page_that_says_why(live_server, page):
    account = AccountFactory(name="Barry's wallet")
    log_in(page, live_server, "clerk", CLERK_PERMISSIONS)

    response = page.goto(
        live_server.url + reverse("admin:accounts_account_top_up", args=[account.pk])
    )

    assert response.status == 403
    assert page.locator("#site-name").count() == 1  # the admin's layout, styled
    assert "Can move money" in page.inner_text("#forbidden-reason")
    screenshot(page, "admin-403")
