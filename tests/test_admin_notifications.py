"""The admin and notification marks: ``notified_at`` shown, filtered, and set by an action."""

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import facade
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory, StaffFactory
from .utils import CLERK_PERMISSIONS

pytestmark = pytest.mark.django_db

EARLIER = datetime.datetime(2026, 3, 2, 9, 30, tzinfo=datetime.UTC)


def url(name, *args):
    return reverse("admin:accounts_%s" % name, args=args)


def logged_in(*permissions):
    client = Client()
    client.force_login(StaffFactory(permissions=[*CLERK_PERMISSIONS, "accounts.view_hold",
                                                 *permissions]))  # fmt: skip
    return client


@pytest.fixture
def ledger(fund):
    """A notified transfer, an unnotified one, and an unnotified hold."""
    wallet = AccountFactory(name="Wallet")
    notified = fund(wallet, "50.00")
    Transfer.objects.filter(pk=notified.pk).mark_notified(when=EARLIER)
    waiting = facade.transfer(wallet, Account.objects.sales_account(), Decimal("7.00"))
    hold = facade.hold(wallet, Account.objects.sales_account(), Decimal("3.00"))
    return notified, waiting, hold


def test_notified_at_is_shown_read_only(ledger):
    notified, _waiting, hold = ledger
    client = logged_in("accounts.mark_notified")
    page = client.get(url("transfer_change", notified.pk)).content.decode()
    assert "field-notified_at" in page and "March 2, 2026, 9:30" in page
    assert 'name="notified_at"' not in page
    page = client.get(url("hold_change", hold.pk)).content.decode()
    assert "field-notified_at" in page and 'name="notified_at"' not in page


def test_the_transfer_list_filters_by_notified(ledger):
    notified, waiting, _hold = ledger
    client = logged_in()
    page = client.get(url("transfer_changelist"), {"notified": "yes"}).content.decode()
    assert notified.reference in page and waiting.reference not in page
    page = client.get(url("transfer_changelist"), {"notified": "no"}).content.decode()
    assert waiting.reference in page and notified.reference not in page
    page = client.get(url("transfer_changelist")).content.decode()
    assert 'href="?notified=no"' in page  # offered as a filter


def test_mark_as_notified_needs_its_permission(ledger):
    _notified, waiting, hold = ledger
    for model, row in (("transfer", waiting), ("hold", hold)):
        # A cashier may move money, but not mark notifications as sent.
        client = logged_in("accounts.move_money")
        page = client.get(url("%s_changelist" % model)).content.decode()
        assert 'value="mark_as_notified"' not in page
        client.post(
            url("%s_changelist" % model),
            {"action": "mark_as_notified", "_selected_action": [row.pk]},
        )
    assert Transfer.objects.get(pk=waiting.pk).notified_at is None
    assert Hold.objects.get(pk=hold.pk).notified_at is None


def test_mark_as_notified_marks_the_selected_rows_that_have_no_mark(ledger):
    notified, waiting, hold = ledger
    client = logged_in("accounts.mark_notified")
    page = client.get(url("transfer_changelist")).content.decode()
    assert 'value="mark_as_notified"' in page
    response = client.post(
        url("transfer_changelist"),
        {"action": "mark_as_notified", "_selected_action": [notified.pk, waiting.pk]},
        follow=True,
    )
    assert "Marked 1 of the 2 selected transfers as notified" in response.content.decode()
    assert Transfer.objects.get(pk=notified.pk).notified_at == EARLIER  # kept
    assert Transfer.objects.get(pk=waiting.pk).notified_at > EARLIER
    response = client.post(
        url("hold_changelist"),
        {"action": "mark_as_notified", "_selected_action": [hold.pk]},
        follow=True,
    )
    assert "Marked 1 of the 1 selected holds as notified" in response.content.decode()
    assert Hold.objects.unnotified().count() == 0
