"""The admin of spending limits, repayments and declined payments (accounts.admin_wallets)."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import facade
from accounts.exceptions import SpendingLimitExceeded
from accounts.forms import AccountForm
from accounts.models import Account, AccountType, Decline, SpendingLimit

from .factories import AccountFactory, StaffFactory

pytestmark = pytest.mark.django_db

LIMIT_PERMISSIONS = [
    "accounts.view_spendinglimit",
    "accounts.add_spendinglimit",
    "accounts.change_spendinglimit",
    "accounts.delete_spendinglimit",
    "accounts.view_account",
    "accounts.change_account",
    "accounts.view_decline",
    "accounts.view_repayment",
]


def client_for(*extra):
    client = Client()
    client.force_login(StaffFactory(permissions=[*LIMIT_PERMISSIONS, *extra]))
    return client


@pytest.fixture
def limit(account):
    return SpendingLimit.objects.create(account=account, period="day", amount=Decimal("100.00"))


def change_url(limit):
    return reverse("admin:accounts_spendinglimit_change", args=[limit.pk])


def test_without_move_money_a_limit_may_be_lowered_only(limit):
    client = client_for()
    assert client.post(change_url(limit), {"amount": "60,00"}).status_code == 302
    limit.refresh_from_db()
    assert limit.amount == Decimal("60.00")
    page = client.post(change_url(limit), {"amount": "80.00"})
    assert page.status_code == 200
    assert "can raise a spending limit" in page.content.decode()
    limit.refresh_from_db()
    assert limit.amount == Decimal("60.00")
    add = client.get(reverse("admin:accounts_spendinglimit_add"))
    assert add.status_code == 403
    delete = client.post(
        reverse("admin:accounts_spendinglimit_delete", args=[limit.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert SpendingLimit.objects.filter(pk=limit.pk).exists()


def test_with_move_money_a_limit_may_be_created_raised_and_removed(account):
    client = client_for("accounts.move_money")
    created = client.post(
        reverse("admin:accounts_spendinglimit_add"),
        {"account": account.pk, "period": "week", "amount": "250.00"},
    )
    assert created.status_code == 302
    limit = SpendingLimit.objects.get(account=account)
    assert client.post(change_url(limit), {"amount": "300.00"}).status_code == 302
    limit.refresh_from_db()
    assert limit.amount == Decimal("300.00")
    assert limit.changed_at is not None
    removed = client.post(
        reverse("admin:accounts_spendinglimit_delete", args=[limit.pk]), {"post": "yes"}
    )
    assert removed.status_code == 302
    assert not SpendingLimit.objects.exists()


def test_the_form_refuses_what_the_model_refuses(account, source):
    client = client_for("accounts.move_money")
    url = reverse("admin:accounts_spendinglimit_add")
    core = client.post(url, {"account": source.pk, "period": "day", "amount": "1.00"})
    assert "given a spending limit" in core.content.decode()
    places = client.post(url, {"account": account.pk, "period": "day", "amount": "1.005"})
    assert "more decimal places than GBP" in places.content.decode()
    both = client.post(url, {"period": "day", "amount": "1.00"})
    assert "exactly one" in both.content.decode()
    assert not SpendingLimit.objects.exists()


def test_the_owner_and_period_of_a_limit_do_not_change(limit):
    other = AccountFactory()
    client = client_for("accounts.move_money")
    client.post(change_url(limit), {"account": other.pk, "period": "month", "amount": "90.00"})
    limit.refresh_from_db()
    assert (limit.account_id, limit.period, limit.amount) == (
        limit.account_id,
        "day",
        Decimal("90.00"),
    )


def test_moving_an_account_to_a_type_with_looser_limits_needs_move_money(clerk, cashier):
    strict = AccountType.objects.create(name="Strict", code="strict")
    loose = AccountType.objects.create(name="Loose", code="loose")
    SpendingLimit.objects.create(account_type=strict, period="day", amount=Decimal("10.00"))
    SpendingLimit.objects.create(account_type=loose, period="day", amount=Decimal("50.00"))
    account = AccountFactory(account_type=strict)

    def edit(user, account_type):
        data = {"name": account.name, "currency": "GBP", "credit_limit": "0"}
        data["account_type"] = account_type.pk if account_type else ""
        return AccountForm(data, instance=Account.objects.get(pk=account.pk), user=user)

    for target in (loose, None):
        form = edit(clerk, target)
        assert not form.is_valid()
        assert "higher or missing (day)" in str(form.errors["account_type"])
    assert edit(cashier, loose).is_valid()
    stricter = AccountType.objects.create(name="Stricter", code="stricter")
    SpendingLimit.objects.create(account_type=stricter, period="day", amount=Decimal("5.00"))
    assert edit(clerk, stricter).is_valid()


def test_an_accounts_page_shows_its_spending_and_its_declines(account, fund, settings):
    settings.ACCOUNTS_RECORD_DECLINES = True
    fund(account, "100.00")
    SpendingLimit.objects.create(account=account, period="day", amount=Decimal("40.00"))
    facade.transfer(account, Account.objects.sales_account(), Decimal("25.00"))
    with pytest.raises(SpendingLimitExceeded, match="daily"):
        facade.transfer(
            account, Account.objects.sales_account(), Decimal("20.00"), merchant_reference="m-9"
        )
    page = client_for().get(reverse("admin:accounts_account_change", args=[account.pk]))
    html = page.content.decode()
    assert page.context["spending"][0].available.amount == Decimal("15.00")
    assert "Spending limits" in html and "£15.00" in html
    assert page.context["declines"] == list(Decline.objects.all())
    assert "daily limit reached" in html and "m-9" in html


def test_declines_and_repayments_are_read_only(account, fund, settings):
    client = client_for("accounts.move_money")
    for name in ("decline", "repayment"):
        assert client.get(reverse("admin:accounts_%s_add" % name)).status_code == 403
        listing = client.get(reverse("admin:accounts_%s_changelist" % name))
        assert listing.status_code == 200
        assert not listing.context["has_add_permission"]
