"""
The locked path (``accounts.posting``): the one way into the ledger.

:func:`locked` opens a savepoint and locks the accounts in primary-key order,
re-reading them; :func:`after_commit` tells receivers once the outermost
transaction commits; :func:`update_instances` gives the caller's instances
what was written.
"""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.dispatch import Signal
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from accounts import facade, posting
from accounts.exceptions import InsufficientFunds, InvalidAccount, LedgerImmutable
from accounts.models import Account, Transfer

from .factories import AccountFactory, UserFactory
from .utils import BACKEND, is_transaction_control

pytestmark = pytest.mark.django_db


# Locking ----------------------------------------------------------------------------


def test_a_deleted_account_is_refused(source):
    account = AccountFactory()
    Account.objects.filter(pk=account.pk).delete()
    with pytest.raises(InvalidAccount, match="does not exist"):
        facade.transfer(source, account, Decimal("1.00"))


def test_a_stale_account_instance_cannot_overdraw(fund):
    account = AccountFactory()
    fund(account, "10.00")
    stale = Account.objects.get(pk=account.pk)
    facade.transfer(account, Account.objects.sales_account(), Decimal("10.00"))
    assert stale.balance == Money("10.00", "GBP")  # what this instance believes
    with pytest.raises(InsufficientFunds, match=r"only £0\.00 is available"):
        facade.transfer(stale, Account.objects.sales_account(), Decimal("10.00"))


def test_transfer_inside_a_callers_atomic_is_rolled_back_with_it(source, account):
    class Abort(Exception):
        pass

    with pytest.raises(Abort, match="the caller gives up"):
        with transaction.atomic():
            facade.transfer(source, account, Decimal("10.00"))
            raise Abort("the caller gives up")
    account.refresh_from_db()
    assert account.balance == Money("0.00", "GBP")
    assert Transfer.objects.count() == 0


def test_a_refused_transfer_leaves_the_callers_transaction_usable(source, account):
    with transaction.atomic():
        with pytest.raises(InsufficientFunds, match=r"only £0\.00 is available"):
            facade.transfer(account, source, Decimal("1.00"))
        facade.transfer(source, account, Decimal("2.00"))
    account.refresh_from_db()
    assert account.balance == Money("2.00", "GBP")


def test_locked_reads_the_accounts_in_primary_key_order_whatever_the_order_asked(fund):
    first, second, third = AccountFactory(), AccountFactory(), AccountFactory()
    fund(second, "3.00")
    with CaptureQueriesContext(connection) as queries:
        with posting.locked("default", [third.pk, first.pk, second.pk]) as lock:
            assert list(lock.rows) == [first.pk, second.pk, third.pk]
            assert lock.rows[second.pk].balance == Money("3.00", "GBP")
            assert lock.now.tzinfo is not None
    (statement,) = [q["sql"] for q in queries if not is_transaction_control(q["sql"])]
    assert "ORDER BY" in statement.upper()
    if BACKEND != "sqlite":  # SQLite locks the whole database instead
        assert "FOR UPDATE" in statement.upper()


def test_locked_rereads_the_rows_whatever_the_instances_say(fund):
    account = AccountFactory()
    fund(account, "10.00")
    stale = Account.objects.get(pk=account.pk)
    facade.transfer(account, Account.objects.sales_account(), Decimal("4.00"))
    with posting.locked("default", [stale.pk]) as lock:
        assert lock.rows[stale.pk].balance == Money("6.00", "GBP")
    assert stale.balance == Money("10.00", "GBP")


def test_locked_refuses_a_missing_account_naming_the_first_one(account):
    missing = Account.objects.order_by("-pk").values_list("pk", flat=True)[0] + 10
    with pytest.raises(InvalidAccount, match="^Account %d does not exist" % missing):
        with posting.locked("default", [missing + 1, account.pk, missing]):
            pytest.fail("the block runs only when every account exists")


def test_locked_is_a_savepoint_undone_with_what_raised_inside_it(account):
    with transaction.atomic():
        with pytest.raises(ValueError, match="refused after the write"):
            with posting.locked("default", [account.pk]):
                posting.write_accounts("default", {account.pk: {"status": "frozen"}})
                raise ValueError("refused after the write")
        assert Account.objects.get(pk=account.pk).status == "open"


# After the commit -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_after_commit_sends_once_when_the_outermost_transaction_commits():
    signal, heard = Signal(), []
    signal.connect(lambda sender, **kwargs: heard.append((sender, kwargs)), weak=False)
    with transaction.atomic():
        with transaction.atomic():
            posting.after_commit("default", signal, Transfer, transfer="t1")
        assert heard == []  # the savepoint is released, nothing is committed yet
    assert heard == [(Transfer, {"signal": signal, "transfer": "t1"})]


@pytest.mark.django_db(transaction=True)
def test_after_commit_sends_nothing_for_what_was_rolled_back():
    signal, heard = Signal(), []
    signal.connect(lambda sender, **kwargs: heard.append(kwargs["transfer"]), weak=False)
    with transaction.atomic():
        try:
            with transaction.atomic():
                posting.after_commit("default", signal, Transfer, transfer="undone")
                raise ValueError("the savepoint is rolled back")
        except ValueError:
            pass
        posting.after_commit("default", signal, Transfer, transfer="kept")
    with pytest.raises(ValueError, match="the caller gives up"):
        with transaction.atomic():
            posting.after_commit("default", signal, Transfer, transfer="never")
            raise ValueError("the caller gives up")
    assert heard == ["kept"]


# The caller's instances -------------------------------------------------------------


def test_transfer_updates_the_balance_of_the_instances_passed_in(source, account):
    facade.transfer(source, account, Decimal("7.50"))
    assert account.balance == Money("7.50", "GBP")
    assert source.balance == Money("-7.50", "GBP")


def test_update_instances_gives_each_instance_its_rows_columns(account):
    other = AccountFactory()
    row = Account.objects.get(pk=account.pk)
    row.__dict__.update(balance=Decimal("12.50"), held=Decimal("2.50"), status="frozen")
    posting.update_instances({account.pk: row}, account, other, "not an account", None)
    assert (account.balance, account.held, account.status) == (
        Money("12.50", "GBP"),
        Money("2.50", "GBP"),
        "frozen",
    )
    assert (other.balance, other.status) == (Money("0.00", "GBP"), "open")


def test_an_updated_instance_can_still_be_saved_without_undoing_the_write(account):
    facade.freeze(Account.objects.get(pk=account.pk))
    with posting.locked("default", [account.pk]) as lock:
        pass
    posting.update_instances(lock.rows, account)
    account.name = "Renamed"
    account.save()
    stored = Account.objects.get(pk=account.pk)
    assert (stored.name, stored.status) == ("Renamed", "frozen")
    account.status = "open"
    with pytest.raises(LedgerImmutable, match="status"):
        account.save()


def test_username_is_recorded_next_to_the_user_and_kept_without_one():
    assert posting.username(UserFactory(username="clerk")) == "clerk"
    assert posting.username(None) == ""
