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

from .conftest import ARTIFACTS, CLERK_PERMISSIONS
from .factories import AccountFactory, StaffFactory

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
    page.fill("#id_amount", "25.00")
    page.fill("#id_description", "Welcome credit")
    page.click("input[name=_save]")
    top_up = Transfer.objects.get(destination=account)
    page.wait_for_url("**" + reverse("admin:accounts_transfer_change", args=[top_up.pk]))
    assert "Moved £25.00 from Bank (GBP) to Barry's wallet" in page.inner_text(".messagelist")

    page.click("a.reverse-link")
    page.fill("#id_amount", "10.00")
    page.fill("#id_description", "Partial refund")
    page.click("input[name=_save]")
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
