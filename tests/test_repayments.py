"""facade.repay: repaying a debt, up to what is owed, decided under the lock."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import (
    CurrencyMismatch,
    FrozenAccount,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    LedgerImmutable,
    SameAccount,
    SpendingLimitExceeded,
)
from accounts.models import Account, Repayment, SpendingLimit, Transfer

from .factories import AccountFactory, UserFactory
from .utils import assert_ledger_consistent, ledger_totals, needs_row_locks, run_concurrently

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(db):
    return Account.objects.sales_account()


@pytest.fixture
def reimbursements(fund):
    """An operator's account that owes members money (reimbursements, refunds)."""
    account = AccountFactory(name="Reimbursements", credit_limit=None)
    fund(account, "1000.00")
    return account


@pytest.fixture
def wallet(shop):
    """A card wallet 80.00 in debt (its credit limit is 200.00)."""
    account = AccountFactory(name="Card wallet", credit_limit=Decimal("200.00"))
    facade.transfer(account, shop, Decimal("80.00"))
    return account


def test_repay_moves_what_was_asked_when_the_debt_is_larger(reimbursements, wallet):
    paid = facade.repay(reimbursements, wallet, Decimal("50.00"), user=UserFactory())
    assert paid.amount == Money("50.00", "GBP")
    assert (paid.source_id, paid.destination_id) == (reimbursements.pk, wallet.pk)
    assert wallet.balance == Money("-30.00", "GBP")  # the instance passed in was updated
    record = Repayment.objects.get()
    assert (record.requested, record.debt, record.transfer_id, record.repaid) == (
        Money("50.00", "GBP"),
        Money("80.00", "GBP"),
        paid.pk,
        Money("50.00", "GBP"),
    )


def test_repay_moves_only_the_debt_when_more_is_asked(reimbursements, wallet):
    paid = facade.repay(reimbursements, wallet, Money("500.00", "GBP"))
    assert paid.amount == Money("80.00", "GBP")
    wallet.refresh_from_db()
    assert wallet.balance == Money("0.00", "GBP")
    assert_ledger_consistent()


def test_without_a_debt_repay_returns_none_and_writes_nothing(reimbursements, account, fund):
    fund(account, "5.00")
    before = ledger_totals()
    assert facade.repay(reimbursements, account, Decimal("50.00")) is None
    assert ledger_totals() == before
    assert not Repayment.objects.exists()


def test_with_a_key_no_debt_is_an_answer_repeated_even_after_a_debt_appears(
    reimbursements, account, shop
):
    assert facade.repay(reimbursements, account, Decimal("50.00"), idempotency_key="r-1") is None
    Account.objects.filter(pk=account.pk).update(credit_limit=Decimal("100.00"))
    facade.transfer(account, shop, Decimal("40.00"))
    assert facade.repay(reimbursements, account, Decimal("50.00"), idempotency_key="r-1") is None
    account.refresh_from_db()
    assert account.balance == Money("-40.00", "GBP")
    record = Repayment.objects.get()
    assert (record.debt, record.transfer) == (Money("0.00", "GBP"), None)


def test_with_a_key_a_retry_returns_the_same_transfer_whatever_the_debt_now(
    reimbursements, wallet, shop
):
    paid = facade.repay(reimbursements, wallet, Decimal("50.00"), idempotency_key="r-2")
    facade.transfer(wallet, shop, Decimal("60.00"))
    assert facade.repay(reimbursements, wallet, Decimal("50.00"), idempotency_key="r-2") == paid
    assert Transfer.objects.filter(destination=wallet).count() == 1
    with pytest.raises(IdempotencyConflict, match="'r-2' was already used"):
        facade.repay(reimbursements, wallet, Decimal("60.00"), idempotency_key="r-2")


def test_bad_input_is_refused_with_or_without_a_debt(reimbursements, wallet, account):
    euros = AccountFactory(currency="EUR")
    before = ledger_totals()
    with pytest.raises(CurrencyMismatch, match="EUR"):
        facade.repay(reimbursements, euros, Decimal("5.00"))
    with pytest.raises(CurrencyMismatch, match="EUR"):
        facade.repay(reimbursements, wallet, Money("5.00", "EUR"))
    with pytest.raises(InvalidAmount, match="more decimal places"):
        facade.repay(reimbursements, account, Decimal("5.001"))
    with pytest.raises(InvalidAmount, match="greater than zero"):
        facade.repay(reimbursements, wallet, Decimal("0"))
    with pytest.raises(SameAccount, match="to itself"):
        facade.repay(wallet, wallet, Decimal("5.00"))
    assert ledger_totals() == before
    assert not Repayment.objects.exists()


def test_the_source_is_debited_as_by_a_transfer(wallet, shop):
    poor = AccountFactory(credit_limit=Decimal("0"))
    with pytest.raises(InsufficientFunds, match="only £0.00 is available"):
        facade.repay(poor, wallet, Decimal("10.00"))
    staff_budget = AccountFactory(credit_limit=Decimal("100.00"))
    SpendingLimit.objects.create(account=staff_budget, period="day", amount=Decimal("5.00"))
    with pytest.raises(SpendingLimitExceeded, match="£5.00 is left"):
        facade.repay(staff_budget, wallet, Decimal("10.00"))
    assert not Repayment.objects.exists()


def test_a_frozen_debtor_is_refused(reimbursements, wallet):
    wallet.freeze()
    with pytest.raises(FrozenAccount, match="frozen"):
        facade.repay(reimbursements, wallet, Decimal("10.00"))


def test_repayments_are_append_only(reimbursements, wallet):
    facade.repay(reimbursements, wallet, Decimal("10.00"))
    record = Repayment.objects.get()
    with pytest.raises(LedgerImmutable, match="written only by accounts.facade"):
        record.save()
    with pytest.raises(LedgerImmutable, match="append-only"):
        record.delete()
    with pytest.raises(LedgerImmutable, match="append-only"):
        Repayment.objects.update(debt=Decimal("1"))
    with pytest.raises(DatabaseError, match="UPDATE of accounts_repayment .*append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_repayment SET debt = 1 WHERE id = %s", [record.pk])
    # Personal data can be erased.
    assert Repayment.objects.erase_personal_data() == 1


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_repayments_racing_payments_never_repay_more_than_the_debt(reimbursements, shop):
    wallet = AccountFactory(credit_limit=Decimal("1000.00"))
    facade.transfer(wallet, shop, Decimal("100.00"))

    def work(i):
        if i % 2:
            return facade.transfer(wallet.pk, shop.pk, Decimal("7.00"))
        return facade.repay(reimbursements.pk, wallet.pk, Decimal("30.00"))

    results, expected, unexpected = run_concurrently(12, work)
    assert unexpected == [] and expected == []
    wallet.refresh_from_db()
    # Each repayment moved at most the debt it saw under the lock: never into credit.
    assert wallet.balance.amount <= 0
    repaid = sum(
        (r.transfer.amount.amount for r in Repayment.objects.select_related("transfer")),
        Decimal(0),
    )
    assert wallet.balance.amount == Decimal("-100.00") - Decimal("42.00") + repaid
    assert_ledger_consistent()
