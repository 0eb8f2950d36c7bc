"""The customer's journey in the demo shop, in a real headless Chromium.

Check a gift card's balance, pay an order with the card plus the customer's
own account, refund part of it, and see the statement change. Skipped (or,
with CI=true, failed) like ``test_browser.py`` where Chromium or Playwright
is missing; the screenshot goes to ``artifacts/``.
"""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.urls import reverse
from djmoney.money import Money

from accounts import facade
from accounts.codes import format_code, generate_code
from accounts.models import Account
from sandbox.shop.models import Order

from .factories import AccountFactory
from .utils import ARTIFACTS, assert_ledger_consistent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def empty_caches():
    for cache in caches.all(initialized_only=True):
        cache.clear()


def test_check_a_card_pay_with_it_and_the_account_refund_and_see_the_statement(
    live_server,
    page,
):
    barry = get_user_model().objects.create_user("barry", password="barry")
    wallet = AccountFactory(name="Barry's wallet", primary_user=barry)
    card = AccountFactory(name=None, code=generate_code())
    bank = Account.objects.source_account()
    facade.transfer(bank, wallet, Decimal("40.00"))
    facade.transfer(bank, card, Decimal("10.00"))
    site = live_server.url

    # The balance check needs no login; the code is typed loosely.
    page.goto(site + reverse("accounts:balance_check"))
    page.fill("#id_code", format_code(card.code).lower().replace("-", " "))
    page.click("form.accounts-balance-check button[type=submit]")
    assert page.inner_text(".card-balance") == "£10.00"

    page.goto(site + reverse("shop:login"))
    page.fill("#id_username", "barry")
    page.fill("#id_password", "barry")
    page.click("main form button[type=submit]")
    page.wait_for_url("**" + reverse("shop:my_accounts"))

    page.goto(site + reverse("shop:shop"))
    page.click("button[data-product=coffee]")  # £18.50
    assert page.inner_text(".basket-total") == "£18.50"
    page.fill("#id_cards", format_code(card.code))
    page.select_option("#id_account", label="Barry's wallet")
    page.click("#payment button[type=submit]")
    page.wait_for_selector(".messages .success")
    order = Order.objects.get()
    assert page.inner_text(".messages") == "Thank you: order %s is paid." % order.number
    payments = page.locator("#payments tr.payment")
    assert payments.count() == 2
    assert (
        payments.nth(0).locator(".payer").inner_text()
        == "Gift card ending %s" % (format_code(card.code)[-4:])
    )
    assert payments.nth(0).locator(".amount").inner_text() == "£10.00"
    assert payments.nth(1).locator(".payer").inner_text() == "Barry's wallet"
    assert payments.nth(1).locator(".amount").inner_text() == "£8.50"

    statement = site + reverse("shop:statement", args=[wallet.pk])
    page.goto(statement)
    assert page.inner_text(".current-balance") == "£31.50"
    assert page.locator("#statement tbody tr").count() == 2

    # Refund part of the payment from the account.
    page.goto(site + order.get_absolute_url())
    wallet_payment = page.locator("#payments tr.payment").nth(1)
    assert wallet_payment.locator(".refund-all-form button").inner_text() == "Refund all (£8.50)"
    wallet_payment.locator(".refund-form input[name=amount]").fill("5,00")
    wallet_payment.locator(".refund-form button[type=submit]").click()
    page.wait_for_selector(".messages .success")
    assert page.inner_text(".messages") == "Refunded £5.00."
    assert page.locator("#payments tr.payment").nth(1).locator(".refundable").inner_text() == (
        "£3.50"
    )

    page.goto(statement)
    assert page.inner_text(".current-balance") == "£36.50"
    rows = page.locator("#statement tbody tr")
    assert rows.count() == 3
    assert "Refund for order %s" % order.number in rows.nth(0).inner_text()
    assert rows.nth(0).locator(".amount").inner_text() == "£5.00"
    assert rows.nth(0).locator(".balance-after").inner_text() == "£36.50"
    assert rows.nth(1).locator(".amount").inner_text() == "-£8.50"
    assert rows.nth(1).locator(".balance-after").inner_text() == "£31.50"
    assert rows.nth(2).locator(".balance-after").inner_text() == "£40.00"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / ("shop-statement-%s.png" % connection.vendor)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    wallet.refresh_from_db()
    card.refresh_from_db()
    assert (wallet.balance, card.balance) == (Money("36.50", "GBP"), Money("0.00", "GBP"))
    assert_ledger_consistent()


def test_a_refused_checkout_tells_the_customer_why_without_internals(live_server, page):
    barry = get_user_model().objects.create_user("barry", password="barry")
    AccountFactory(name="Barry's wallet", primary_user=barry)
    frozen = AccountFactory(name=None, code=generate_code())
    facade.transfer(Account.objects.source_account(), frozen, Decimal("30.00"))
    frozen.freeze()
    site = live_server.url
    page.goto(site + reverse("shop:login"))
    page.fill("#id_username", "barry")
    page.fill("#id_password", "barry")
    page.click("main form button[type=submit]")
    page.wait_for_url("**" + reverse("shop:my_accounts"))

    page.goto(site + reverse("shop:shop"))
    page.click("button[data-product=tea]")
    page.fill("#id_cards", frozen.code.lower())
    page.click("#payment button[type=submit]")

    error = page.inner_text("#payment .errorlist")
    assert error == "Gift card %s is frozen and cannot be used for now." % format_code(frozen.code)
    assert frozen.code not in error and "#%s" % frozen.pk not in error
    assert not Order.objects.exists()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / ("shop-refused-%s.png" % connection.vendor)))
