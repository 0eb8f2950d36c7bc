"""The admin for holds: browsing, filtering and releasing (accounts.move_money)."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from accounts import facade
from accounts.models import Account, Hold

from .factories import AccountFactory, StaffFactory
from .utils import CLERK_PERMISSIONS

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse("admin:accounts_%s" % name, args=args)


def logged_in(*permissions):
    client = Client()
    client.force_login(StaffFactory(permissions=[*CLERK_PERMISSIONS, "accounts.view_hold",
                                                 *permissions]))  # fmt: skip
    return client


@pytest.fixture
def holds(fund):
    wallet, shop = AccountFactory(name="Wallet"), AccountFactory(name="Shop")
    fund(wallet, "50.00")
    active = facade.hold(wallet, shop, Decimal("10.00"), merchant_reference="ORDER-1")
    captured = facade.hold(wallet, shop, Decimal("5.00"))
    facade.capture(captured)
    return wallet, active, captured


def test_release_view_is_named_after_what_it_does():
    assert url("hold_release", 3) == "/admin/accounts/hold/3/release/"


def test_holds_are_listed_filtered_by_status_and_searchable(holds):
    _, active, captured = holds
    client = logged_in()
    page = client.get(url("hold_changelist"), {"status": "active"}).content.decode()
    assert active.reference in page and captured.reference not in page
    page = client.get(url("hold_changelist"), {"q": "ORDER-1"}).content.decode()
    assert active.reference in page and captured.reference not in page


def test_holds_are_read_only_in_the_admin(holds):
    _, active, _ = holds
    client = logged_in("accounts.move_money", "accounts.change_hold", "accounts.delete_hold")
    assert client.get(reverse("admin:accounts_hold_add")).status_code == 403
    page = client.get(url("hold_change", active.pk)).content.decode()
    assert 'name="amount"' not in page
    assert client.post(url("hold_delete", active.pk), {"post": "yes"}).status_code == 403
    assert Hold.objects.get(pk=active.pk).status == "active"


def test_the_account_page_shows_what_is_held(holds):
    wallet, active, captured = holds
    page = logged_in().get(url("account_change", wallet.pk)).content.decode()
    assert "active holds" in page
    assert active.reference in page and captured.reference not in page
    assert "£10.00" in page  # held
    assert "£35.00" in page  # available: 45 balance - 10 held + 0 credit


def test_release_frees_the_money_and_records_the_staff_user(holds):
    wallet, active, _ = holds
    client = logged_in("accounts.move_money")
    page = client.get(url("hold_change", active.pk)).content.decode()
    assert url("hold_release", active.pk) in page
    assert "£10.00" in client.get(url("hold_release", active.pk)).content.decode()
    response = client.post(url("hold_release", active.pk), follow=True)
    assert any("is released" in str(m) for m in response.context["messages"])
    active.refresh_from_db()
    assert active.status == "released" and active.resolved_by.startswith("user")
    assert Account.objects.get(pk=wallet.pk).held == Money("0.00", "GBP")
    assert LogEntry.objects.filter(object_id=str(active.pk)).exists()


def test_releasing_a_resolved_hold_is_a_form_error(holds):
    _, _, captured = holds
    client = logged_in("accounts.move_money")
    response = client.post(url("hold_release", captured.pk))
    assert response.status_code == 200
    assert "is already captured" in response.content.decode()
    assert (
        url("hold_release", captured.pk)
        not in client.get(url("hold_change", captured.pk)).content.decode()
    )


def test_release_needs_move_money(holds):
    wallet, active, _ = holds
    client = logged_in()
    page = client.get(url("hold_change", active.pk)).content.decode()
    assert url("hold_release", active.pk) not in page
    assert client.get(url("hold_release", active.pk)).status_code == 403
    assert client.post(url("hold_release", active.pk)).status_code == 403
    response = client.post(
        url("hold_changelist"), {"action": "release_holds", "_selected_action": [active.pk]}
    )
    assert response.status_code in (200, 302)
    assert Hold.objects.get(pk=active.pk).status == "active"


def test_release_is_csrf_protected(holds):
    _, active, _ = holds
    client = Client(enforce_csrf_checks=True)
    client.force_login(StaffFactory(permissions=["accounts.view_hold", "accounts.move_money"]))
    assert client.post(url("hold_release", active.pk)).status_code == 403
    assert Hold.objects.get(pk=active.pk).status == "active"


def test_bulk_release_reports_each_hold(holds, fund):
    wallet, active, captured = holds
    other = facade.hold(wallet, AccountFactory(), Decimal("1.00"))
    client = logged_in("accounts.move_money")
    selected = {"action": "release_holds", "_selected_action": [active.pk, captured.pk, other.pk]}
    response = client.post(url("hold_changelist"), {**selected, "post": "yes"}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert sum("is released" in t for t in texts) == 2
    assert any("is already captured" in t for t in texts)
    assert any("1 of 3 holds were left unchanged" in t for t in texts)
    assert set(Hold.objects.values_list("status", flat=True)) == {"released", "captured"}


def test_the_release_page_says_what_releasing_does_before_anything_changes(holds):
    wallet, active, _ = holds
    client = logged_in("accounts.move_money")

    page = client.get(url("hold_release", active.pk))

    assert str(page.context["confirmation"]) == (
        "Release hold %s: £10.00 reserved on Wallet for Shop becomes available to spend "
        "again. No money moves." % active.reference
    )
    assert 'name="_confirm"' in page.content.decode()
    assert Hold.objects.get(pk=active.pk).status == "active"


def test_a_release_confirmed_twice_releases_once_and_says_so(holds):
    wallet, active, _ = holds
    client = logged_in("accounts.move_money")
    client.post(url("hold_release", active.pk), {"_confirm": "1"}, follow=True)

    again = client.post(url("hold_release", active.pk), {"_confirm": "1"}, follow=True)

    assert [str(m) for m in again.context["messages"]] == [
        "Hold %s was already released; nothing changed." % active.reference
    ]
    assert LogEntry.objects.filter(object_id=str(active.pk)).count() == 1
    assert Account.objects.get(pk=wallet.pk).held == Money("0.00", "GBP")


def test_bulk_release_asks_first_and_lists_what_it_would_free(holds):
    wallet, active, captured = holds
    other = facade.hold(wallet, AccountFactory(), Decimal("1.50"))
    client = logged_in("accounts.move_money")
    selected = {"action": "release_holds", "_selected_action": [active.pk, captured.pk, other.pk]}

    page = client.post(url("hold_changelist"), selected)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Release 2 holds, freeing £11.50 to be spent again. No money moves." in html
    assert [h.pk for h in page.context["active"]] == [active.pk, other.pk]
    assert [h.pk for h in page.context["others"]] == [captured.pk]
    assert 'name="post" value="yes"' in html
    assert Hold.objects.filter(status="active").count() == 2

    client.post(url("hold_changelist"), {**selected, "post": "yes"}, follow=True)
    again = client.post(url("hold_changelist"), {**selected, "post": "yes"}, follow=True)

    texts = [str(m) for m in again.context["messages"]]
    assert sum("was already released; nothing changed" in t for t in texts) == 2
    assert Account.objects.get(pk=wallet.pk).held == Money("0.00", "GBP")
