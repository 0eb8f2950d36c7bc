"""
The public write API (``accounts.facade``): what a transfer or a reversal moves
and records, the refusals the facade itself decides, and what a call costs.

The rules it applies are tested with the modules that hold them:
``test_rules.py``, ``test_amounts.py``, ``test_arguments.py``,
``test_idempotency.py``, ``test_posting.py`` and ``test_signals.py``.
"""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import (
    AccountException,
    AccountExpired,
    AccountNotYetActive,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    SameAccount,
)
from accounts.models import Account, Transaction, Transfer

from .factories import AccountFactory
from .utils import (
    BACKEND,
    TRANSFER_STATEMENTS,
    assert_ledger_consistent,
    is_transaction_control,
    ledger_state,
    ledger_totals,
)

pytestmark = pytest.mark.django_db


# Moving money -----------------------------------------------------------------------


def test_transfer_moves_money_and_writes_two_legs_summing_to_zero(source, account, staff_member):
    trans = facade.transfer(source, account, Decimal("10.00"), user=staff_member)

    account.refresh_from_db()
    source.refresh_from_db()
    assert account.balance == Money("10.00", "GBP")
    assert source.balance == Money("-10.00", "GBP")
    legs = {t.account_id: t for t in trans.transactions.all()}
    assert legs[source.pk].amount == Money("-10.00", "GBP")
    assert legs[account.pk].amount == Money("10.00", "GBP")
    assert legs[source.pk].balance_after == Money("-10.00", "GBP")
    assert legs[account.pk].balance_after == Money("10.00", "GBP")
    assert trans.amount == Money("10.00", "GBP")
    assert trans.user == staff_member
    assert trans.username == "staff"
    assert_ledger_consistent()


def test_transfer_records_merchant_reference_description_and_key(source, account):
    trans = facade.transfer(
        source,
        account,
        Decimal("1.00"),
        merchant_reference="ORDER-1",
        description="Top-up",
        idempotency_key="key-1",
    )
    stored = Transfer.objects.get(pk=trans.pk)
    assert (stored.merchant_reference, stored.description, stored.idempotency_key) == (
        "ORDER-1",
        "Top-up",
        "key-1",
    )
    assert stored.user is None and stored.username == ""


def test_references_are_unique_short_and_not_the_row_id(source, account):
    references = {facade.transfer(source, account, Decimal("1.00")).reference for _ in range(20)}
    assert len(references) == 20
    for reference in references:
        assert 8 <= len(reference) <= 32
        assert not reference.isdigit()


def test_ledger_rows_hold_the_balance_after_each_transaction(source, account, fund):
    fund(account, "5.00")
    fund(account, "2.50")
    facade.transfer(account, Account.objects.sales_account(), Decimal("1.25"))
    afters = list(
        Transaction.objects.filter(account=account)
        .order_by("pk")
        .values_list("balance_after", flat=True)
    )
    assert afters == [Decimal("5.00"), Decimal("7.50"), Decimal("6.25")]


# Refusals the facade decides; each writes nothing -----------------------------------


def test_same_source_and_destination_is_refused(account):
    before = ledger_totals()
    with pytest.raises(SameAccount, match="to itself"):
        facade.transfer(account, account, Decimal("1.00"))
    assert ledger_totals() == before


def test_the_same_account_twice(purchase_and_hold):
    wallet, *_ = purchase_and_hold
    before = ledger_state()
    for call in (facade.transfer, facade.hold):
        with pytest.raises(SameAccount, match="to itself"):
            call(wallet, wallet, Decimal("1.00"))
    with pytest.raises(SameAccount, match="to itself"):
        facade.transfer(wallet.pk, wallet, Decimal("1.00"))
    assert ledger_state() == before


def test_allow_partial_is_not_for_reversals(wallet, sales):
    trans = facade.transfer(wallet, sales, Decimal("1.00"))
    with pytest.raises(InvalidArgument, match="cannot be partial-by-funds"):
        facade.transfer(sales, wallet, Decimal("1.00"), parent=trans, allow_partial=True)


def test_a_date_as_end_date_means_the_whole_day_in_the_current_time_zone(source):
    today = timezone.localdate()
    account = AccountFactory(end_date=today)
    assert account.end_date.date() == today
    facade.transfer(source, account, Decimal("1.00"))  # still usable today

    yesterday = AccountFactory(end_date=today - datetime.timedelta(days=1))
    with pytest.raises(AccountExpired, match="expired on"):
        facade.transfer(source, yesterday, Decimal("1.00"))

    tomorrow = AccountFactory(start_date=today + datetime.timedelta(days=1))
    with pytest.raises(AccountNotYetActive, match="cannot be used before"):
        facade.transfer(source, tomorrow, Decimal("1.00"))


def test_every_refusal_is_an_account_exception(source, account):
    for call, error, message in (
        (lambda: facade.transfer(source, account, 1.5), InvalidAmount, "has type float"),
        (lambda: facade.transfer(account, account, Decimal(1)), SameAccount, "to itself"),
        (lambda: facade.transfer(account, source, Decimal(1)), InsufficientFunds, "debited £1"),
    ):
        with pytest.raises(error, match=message) as info:
            call()
        assert isinstance(info.value, AccountException)


# Reversals --------------------------------------------------------------------------


def test_reverse_moves_the_whole_amount_back(source, account, staff_member):
    trans = facade.transfer(source, account, Decimal("10.00"))
    reversal = facade.reverse(trans, user=staff_member, description="Just an example")
    account.refresh_from_db()
    assert account.balance == Money("0.00", "GBP")
    assert reversal.parent == trans
    assert (reversal.source_id, reversal.destination_id) == (account.pk, source.pk)
    assert reversal.amount == Money("10.00", "GBP")
    assert reversal.description == "Just an example"
    assert reversal.username == "staff"
    assert list(trans.reversals.all()) == [reversal]
    assert trans.reversible_amount() == Money("0.00", "GBP")
    assert_ledger_consistent()


# Cost -------------------------------------------------------------------------------


def test_a_transfer_costs_a_fixed_number_of_statements_whatever_the_history(source, account, fund):
    for _ in range(30):
        fund(account, "1.00")
    with CaptureQueriesContext(connection) as queries:
        facade.transfer(source, account, Decimal("1.00"))
    statements = [q["sql"] for q in queries if not is_transaction_control(q["sql"])]
    # PostgreSQL: one statement that locks both accounts, checks and writes.
    # Elsewhere: lock both accounts; then INSERT, INSERT and UPDATE.
    assert len(statements) == TRANSFER_STATEMENTS, statements
    lock = statements[0].upper()
    if BACKEND == "postgresql" and connection.settings_dict["OPTIONS"].get("server_side_binding"):
        # Bound on the server; psycopg prepares it: lock, check, write.
        assert lock.lstrip().startswith("WITH LOCKED AS MATERIALIZED")
    elif BACKEND == "postgresql":
        # Prepared once per connection (fund() above did it): lock, check, write.
        assert lock.startswith("EXECUTE ACCOUNTS_TRANSFER_")
    else:
        assert lock.startswith("SELECT")
    if BACKEND == "mysql":  # SQLite locks the whole database instead
        assert "FOR UPDATE" in lock
    # The account's history is never read: its legs are only inserted.
    assert not any(re.search(r'FROM\s+"?ACCOUNTS_TRANSACTION', sql.upper()) for sql in statements)


def test_statement_count_is_pinned(source, account, django_assert_max_num_queries):
    # SAVEPOINT and RELEASE (the test's own transaction) plus the transfer's
    # statements: at most 5 besides transaction control, one more with a key.
    assert TRANSFER_STATEMENTS <= 5
    facade.transfer(source, account, Decimal("1.00"))  # PostgreSQL prepares its statement
    with django_assert_max_num_queries(2 + TRANSFER_STATEMENTS):
        facade.transfer(source, account, Decimal("1.00"))
    with django_assert_max_num_queries(2 + TRANSFER_STATEMENTS + 1):
        facade.transfer(source, account, Decimal("1.00"), idempotency_key="k")
