"""
Freezing, thawing and closing an account (``accounts.status``): the one place
an account's status changes, checked on its locked row.

The model's ``freeze()``, ``thaw()`` and ``close()`` and the refusals of
``save()`` and ``update()`` are tested with the model (``test_models.py``);
the rules themselves with ``test_rules.py``.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from accounts import facade, status
from accounts.exceptions import AccountNotEmpty, ClosedAccount, InvalidAccount, ProtectedAccount
from accounts.models import Account

from .factories import AccountFactory

pytestmark = pytest.mark.django_db


def stored_status(account):
    return Account.objects.values_list("status", flat=True).get(pk=account.pk)


def test_an_account_with_active_holds_cannot_be_closed(fund, sales):
    account = AccountFactory(credit_limit=Decimal("10.00"))
    hold = facade.hold(account, sales, Decimal("10.00"))
    with pytest.raises(AccountNotEmpty, match="£10.00 is held by active holds"):
        account.close()
    facade.release(hold)
    account.close()


@pytest.mark.parametrize("new_status", ["frozen", "closed"])
def test_change_writes_the_status_and_returns_the_locked_row(account, new_status):
    row = status.change("default", account.pk, new_status)
    assert (row.pk, row.status) == (account.pk, new_status)
    assert stored_status(account) == new_status
    assert account.status == "open"  # the caller's instance is the facade's business


def test_a_frozen_account_thaws(account):
    status.change("default", account.pk, "frozen")
    assert status.change("default", account.pk, "open").status == "open"
    assert stored_status(account) == "open"


def test_the_status_an_account_already_has_writes_nothing(account):
    status.change("default", account.pk, "frozen")
    with CaptureQueriesContext(connection) as queries:
        assert status.change("default", account.pk, "frozen").status == "frozen"
    writes = ("INSERT", "UPDATE", "DELETE")
    assert not [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(writes)]


def test_refused_changes_write_nothing(fund, source):
    funded = AccountFactory()
    fund(funded, "1.00")
    closed = AccountFactory()
    status.change("default", closed.pk, "closed")
    for account, new_status, error, message in [
        (funded, "closed", AccountNotEmpty, r"its balance is £1\.00"),
        (closed, "open", ClosedAccount, "is closed"),
        (closed, "frozen", ClosedAccount, "is closed"),
        (source, "frozen", ProtectedAccount, "core account and cannot be frozen"),
    ]:
        before = stored_status(account)
        with pytest.raises(error, match=message):
            status.change("default", account.pk, new_status)
        assert stored_status(account) == before


def test_a_missing_account_is_refused(account):
    Account.objects.filter(pk=account.pk).delete()
    with pytest.raises(InvalidAccount, match="does not exist"):
        status.change("default", account.pk, "frozen")


def test_the_facade_gives_the_instance_its_rows_status_and_money(fund):
    account = AccountFactory()
    fund(account, "5.00")
    stale = Account.objects.get(pk=account.pk)
    facade.transfer(account, Account.objects.sales_account(), Decimal("5.00"))
    facade.close(stale)
    assert (stale.status, stale.balance) == ("closed", Money("0.00", "GBP"))
