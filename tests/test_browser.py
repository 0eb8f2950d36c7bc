"""End to end in a real headless Chromium: staff top up an account and reverse part of it.

Uses Debian's chromium (``make system-packages``) through Playwright; it is
skipped, with the reason, where either is missing, and fails instead when
CI=true. Screenshots go to ``artifacts/`` (ignored by git), or to the
directory ``ACCOUNTS_TEST_ARTIFACTS`` names.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from djmoney.money import Money

from accounts.models import Account, Transfer

from .factories import AccountFactory, StaffFactory
from .utils import ARTIFACTS, CLERK_PERMISSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_top_up_an_account_reverse_part_of_it_and_see_the_statement(live_server, page):
    StaffFactory(username="cashier", permissions=[*CLERK_PERMISSIONS, "accounts.move_money"])
    account = AccountFactory(name="Barry's wallet")
    admin = live_server.url + "/admin/"

    page.goto(admin + "login/")
    page.fill("#id_username", "cashier")
    page.fill("#id_password", "staff")
    page.click("input[type=submit]")
    page.wait_for_url(admin)

    page.goto(live_server.url + reverse("admin:accounts_account_change", args=[account.pk]))
    page.click("a.top-up-link")
    page.fill("#id_amount", "25,00")  # a decimal comma, as typed on a French keyboard
    page.fill("#id_description", "Welcome credit")
    page.click("input[name=_save]")
    assert page.inner_text("#confirmation") == "Move £25.00 from Bank (GBP) to Barry's wallet."
    assert not Transfer.objects.exists()  # nothing before the confirmation
    page.click("input[name=_confirm]")
    top_up = Transfer.objects.get(destination=account)
    page.wait_for_url("**" + reverse("admin:accounts_transfer_change", args=[top_up.pk]))
    assert "Moved £25.00 from Bank (GBP) to Barry's wallet" in page.inner_text(".messagelist")

    page.click("a.reverse-link")
    page.fill("#id_amount", "10.00")
    page.fill("#id_description", "Partial refund")
    page.click("input[name=_save]")
    assert "Move £10.00 from Barry's wallet back to Bank (GBP)" in page.inner_text("#confirmation")
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist .success")
    assert page.inner_text(".field-left_to_reverse .readonly") == "£15.00"

    page.goto(live_server.url + reverse("admin:accounts_account_statement", args=[account.pk]))
    assert page.inner_text("td.current-balance") == "£15.00"
    rows = page.locator("#statement tbody tr")
    assert rows.count() == 2
    assert "Partial refund" in rows.nth(0).inner_text()
    assert rows.nth(0).locator("td.amount").inner_text() == "-£10.00"
    assert rows.nth(0).locator("td.balance-after").inner_text() == "£15.00"
    assert rows.nth(1).locator("td.amount").inner_text() == "£25.00"
    assert rows.nth(1).locator("td.balance-after").inner_text() == "£25.00"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / ("admin-statement-%s.png" % connection.vendor)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    account.refresh_from_db()
    assert account.balance == Money("15.00", "GBP")
    reversal = top_up.reversals.get()
    assert (reversal.amount, reversal.username) == (Money("10.00", "GBP"), "cashier")
    assert Account.objects.source_account().balance == Money(Decimal("-15.00"), "GBP")


def test_an_amount_with_a_decimal_comma_moves_what_was_typed_not_a_hundred_times_more(
    live_server, page
):
    StaffFactory(username="cashier", permissions=[*CLERK_PERMISSIONS, "accounts.move_money"])
    account = AccountFactory(name="Barry's wallet")
    admin = live_server.url + "/admin/"
    page.goto(admin + "login/")
    page.fill("#id_username", "cashier")
    page.fill("#id_password", "staff")
    page.click("input[type=submit]")
    page.wait_for_url(admin)

    page.goto(live_server.url + reverse("admin:accounts_account_top_up", args=[account.pk]))
    page.fill("#id_amount", "1,50")
    page.click("input[name=_save]")
    assert page.inner_text("#confirmation") == "Move £1.50 from Bank (GBP) to Barry's wallet."
    # The confirmation is posted once whose answer never arrives (a dropped
    # connection), then again by the user: the money moves once.
    page.evaluate(
        """async () => {
            const form = document.querySelector("#move-money-form");
            const data = new FormData(form);
            data.append("_confirm", "1");
            await fetch(location.href, {method: "POST", body: data, credentials: "same-origin"});
        }"""
    )
    assert Transfer.objects.count() == 1
    page.click("input[name=_confirm]")
    page.wait_for_selector(".messagelist .warning")
    assert "Nothing was moved again" in page.inner_text(".messagelist")

    page.goto(live_server.url + reverse("admin:accounts_account_top_up", args=[account.pk]))
    page.fill("#id_amount", "1,500")
    page.click("input[name=_save]")
    assert "1,500 could mean 1500 or 1.50" in page.inner_text(".errorlist")

    account.refresh_from_db()
    assert account.balance == Money("1.50", "GBP")
    assert Transfer.objects.count() == 1
