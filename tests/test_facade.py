import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from djmoney.money import Money

from accounts import facade, signals
from accounts.exceptions import (
    AccountException,
    AccountExpired,
    AccountNotYetActive,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    IdempotencyConflict,
    InactiveAccount,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidArgument,
    InvalidReversal,
    SameAccount,
)
from accounts.models import Account, Transaction, Transfer

from .factories import AccountFactory
from .utils import (
    BACKEND,
    TRANSFER_STATEMENTS,
    TRANSFER_WRITES,
    assert_ledger_consistent,
    is_transaction_control,
    ledger_totals,
)

pytestmark = pytest.mark.django_db


# Moving money ------------------------------------------------------------------


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


def test_transfer_updates_the_balance_of_the_instances_passed_in(source, account):
    facade.transfer(source, account, Decimal("7.50"))
    assert account.balance == Money("7.50", "GBP")
    assert source.balance == Money("-7.50", "GBP")


def test_transfer_accepts_money_in_the_accounts_currency(source, account):
    trans = facade.transfer(source, account, Money("3.20", "GBP"))
    assert trans.amount == Money("3.20", "GBP")


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


def test_credit_limit_allows_going_negative_down_to_the_limit(source):
    account = AccountFactory(credit_limit=Decimal("50.00"))
    sales = Account.objects.sales_account()
    facade.transfer(account, sales, Decimal("50.00"))
    assert account.balance == Money("-50.00", "GBP")
    with pytest.raises(InsufficientFunds, match=r"only £0.00 is available"):
        facade.transfer(account, sales, Decimal("0.01"))


def test_account_without_credit_limit_is_a_source_of_money(db):
    unlimited = Account.objects.create(credit_limit=None)
    other = AccountFactory()
    facade.transfer(unlimited, other, Decimal("1000000.00"))
    assert unlimited.balance == Money("-1000000.00", "GBP")
    assert unlimited.available_amount is None


def test_zero_decimal_currency_moves_whole_units(db):
    bank = Account.objects.source_account("JPY")
    wallet = AccountFactory(currency="JPY")
    facade.transfer(bank, wallet, Decimal("500"))
    assert wallet.balance == Money("500", "JPY")
    with pytest.raises(InvalidAmount, match=r"more decimal places than JPY allows \(0\)"):
        facade.transfer(bank, wallet, Decimal("1.5"))


def test_trailing_zeros_are_not_extra_decimal_places(source, account):
    trans = facade.transfer(source, account, Decimal("2.500"))
    assert trans.amount == Money("2.50", "GBP")


# Refusals: each raises its own exception and writes nothing --------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("0"), "greater than zero"),
        (Decimal("0.00"), "greater than zero"),
        (Decimal("-5.00"), "greater than zero"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("sNaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        (Decimal("-Infinity"), "not a finite number"),
        (10.0, "has type float"),
        (10, "has type int"),
        (True, "has type bool"),
        ("10.00", "has type str"),
        (None, "has type NoneType"),
        (Decimal("10.001"), "more decimal places than GBP allows"),
        (Decimal("1E+15"), "too large"),
        (Decimal("123456789012345678901234567890"), "too large"),
        (Money("-1.00", "GBP"), "greater than zero"),
    ],
)
def test_bad_amounts_raise_invalid_amount_and_write_nothing(source, account, amount, message):
    before = ledger_totals()
    with pytest.raises(InvalidAmount, match=message):
        facade.transfer(source, account, amount)
    assert ledger_totals() == before


def test_same_source_and_destination_is_refused(account):
    before = ledger_totals()
    with pytest.raises(SameAccount, match="to itself"):
        facade.transfer(account, account, Decimal("1.00"))
    assert ledger_totals() == before


def test_accounts_in_different_currencies_are_refused(source):
    euro = AccountFactory(currency="EUR")
    before = ledger_totals()
    with pytest.raises(CurrencyMismatch, match=r"\(GBP\) to .* \(EUR\)"):
        facade.transfer(source, euro, Decimal("1.00"))
    assert ledger_totals() == before


def test_money_in_another_currency_is_refused(source, account):
    with pytest.raises(CurrencyMismatch, match="is in EUR but the account uses GBP"):
        facade.transfer(source, account, Money("1.00", "EUR"))


@pytest.mark.parametrize("side", ["source", "destination"])
@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (Account.Status.CLOSED, ClosedAccount, "is closed"),
        (Account.Status.FROZEN, FrozenAccount, "is frozen"),
    ],
)
def test_closed_and_frozen_accounts_cannot_send_or_receive(side, status, error, message):
    # Credit, not a balance, lets the sender pay: a closed account has none.
    sender, receiver = AccountFactory(credit_limit=Decimal("10.00")), AccountFactory()
    target = sender if side == "source" else receiver
    if status == Account.Status.CLOSED:
        target.close()
    else:
        target.freeze()
    before = ledger_totals()
    with pytest.raises(error, match=message) as info:
        facade.transfer(sender, receiver, Decimal("1.00"))
    assert isinstance(info.value, InactiveAccount)
    assert info.value.account.pk == target.pk
    assert ledger_totals() == before


@pytest.mark.parametrize("side", ["source", "destination"])
def test_accounts_outside_their_dates_cannot_send_or_receive(fund, side):
    sender, receiver = AccountFactory(), AccountFactory()
    fund(sender, "10.00")
    target = sender if side == "source" else receiver
    now = timezone.now()

    Account.objects.filter(pk=target.pk).update(end_date=now - datetime.timedelta(seconds=1))
    with pytest.raises(AccountExpired, match="expired on"):
        facade.transfer(sender, receiver, Decimal("1.00"))

    Account.objects.filter(pk=target.pk).update(
        start_date=now + datetime.timedelta(days=1), end_date=None
    )
    with pytest.raises(AccountNotYetActive, match="cannot be used before"):
        facade.transfer(sender, receiver, Decimal("1.00"))
    assert Transfer.objects.count() == 1


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


def test_insufficient_funds_reports_account_amount_and_available(fund):
    account = AccountFactory(credit_limit=Decimal("5.00"))
    fund(account, "10.00")
    sales = Account.objects.sales_account()
    before = ledger_totals()
    with pytest.raises(InsufficientFunds, match=r"cannot be debited £15\.01") as info:
        facade.transfer(account, sales, Decimal("15.01"))
    assert info.value.account.pk == account.pk
    assert info.value.amount == Money("15.01", "GBP")
    assert info.value.available == Money("15.00", "GBP")
    assert "only £15.00 is available" in str(info.value)
    assert ledger_totals() == before


def test_a_stale_account_instance_cannot_overdraw(fund):
    account = AccountFactory()
    fund(account, "10.00")
    stale = Account.objects.get(pk=account.pk)
    facade.transfer(account, Account.objects.sales_account(), Decimal("10.00"))
    assert stale.balance == Money("10.00", "GBP")  # what this instance believes
    with pytest.raises(InsufficientFunds, match=r"only £0\.00 is available"):
        facade.transfer(stale, Account.objects.sales_account(), Decimal("10.00"))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (None, InvalidAccount, "must be an Account"),
        ("12", InvalidAccount, "must be an Account"),
        (Account(), InvalidAccount, "not saved yet"),
    ],
)
def test_bad_accounts_are_refused(source, bad, error, message):
    with pytest.raises(error, match=message):
        facade.transfer(source, bad, Decimal("1.00"))
    with pytest.raises(error, match=message):
        facade.transfer(bad, source, Decimal("1.00"))


def test_a_deleted_account_is_refused(source):
    account = AccountFactory()
    Account.objects.filter(pk=account.pk).delete()
    with pytest.raises(InvalidAccount, match="does not exist"):
        facade.transfer(source, account, Decimal("1.00"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idempotency_key": ""}, "Idempotency key must not be empty"),
        ({"idempotency_key": 12}, "Idempotency key must be a string"),
        ({"idempotency_key": "k" * 129}, "Idempotency key is 129 characters long"),
        ({"merchant_reference": "r" * 129}, "Merchant reference is 129 characters long"),
        ({"description": b"bytes"}, "Description must be a string"),
    ],
)
def test_bad_details_are_refused(source, account, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        facade.transfer(source, account, Decimal("1.00"), **kwargs)
    assert Transfer.objects.count() == 0


def test_every_refusal_is_an_account_exception(source, account):
    for call, error, message in (
        (lambda: facade.transfer(source, account, 1.5), InvalidAmount, "has type float"),
        (lambda: facade.transfer(account, account, Decimal(1)), SameAccount, "to itself"),
        (lambda: facade.transfer(account, source, Decimal(1)), InsufficientFunds, "debited £1"),
    ):
        with pytest.raises(error, match=message) as info:
            call()
        assert isinstance(info.value, AccountException)


# Top-up bounds ---------------------------------------------------------------------


@override_settings(ACCOUNTS_MIN_INITIAL_VALUE=Decimal("5.00"))
def test_top_up_below_min_initial_value_is_refused(source, account):
    with pytest.raises(InvalidAmount, match=r"at least £5.00 \(got £4.99\)"):
        facade.transfer(source, account, Decimal("4.99"))
    facade.transfer(source, account, Decimal("5.00"))


@override_settings(ACCOUNTS_MAX_INITIAL_VALUE=Decimal("100.00"))
def test_top_up_beyond_max_initial_value_is_refused(source, account):
    facade.transfer(source, account, Decimal("60.00"))
    with pytest.raises(InvalidAmount, match=r"to £100.01, above the maximum of £100.00"):
        facade.transfer(source, account, Decimal("40.01"))
    facade.transfer(source, account, Decimal("40.00"))
    assert account.balance == Money("100.00", "GBP")


@override_settings(
    ACCOUNTS_MIN_INITIAL_VALUE=Decimal("5.00"), ACCOUNTS_MAX_INITIAL_VALUE=Decimal("10.00")
)
def test_initial_value_bounds_apply_only_to_top_ups_from_the_core_source(fund):
    account = AccountFactory()
    fund(account, "10.00")
    other_source = Account.objects.create(credit_limit=None)
    facade.transfer(other_source, account, Decimal("1.00"))  # not a core source
    facade.transfer(account, Account.objects.sales_account(), Decimal("1.00"))


# Transactions and rollback ---------------------------------------------------------


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


# Cost ---------------------------------------------------------------------------------


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


# Idempotency ---------------------------------------------------------------------------


def test_repeating_a_call_with_the_same_key_returns_the_original(source, account):
    first = facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    before = ledger_totals()
    with CaptureQueriesContext(connection) as queries:
        again = facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    assert again.pk == first.pk
    assert ledger_totals() == before
    assert not any(
        q["sql"].upper().startswith(("INSERT", "UPDATE")) for q in queries.captured_queries
    )


def test_a_repeat_is_answered_even_if_the_account_can_no_longer_pay(source, fund):
    account = AccountFactory()
    fund(account, "10.00")
    sales = Account.objects.sales_account()
    first = facade.transfer(account, sales, Decimal("10.00"), idempotency_key="pay-1")
    assert facade.transfer(account, sales, Decimal("10.00"), idempotency_key="pay-1") == first


@pytest.mark.parametrize("change", ["amount", "destination", "source"])
def test_the_same_key_with_different_details_is_a_conflict(source, account, change):
    facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    args = {"source": source, "destination": account, "amount": Decimal("10.00")}
    if change == "amount":
        args["amount"] = Decimal("11.00")
    elif change == "destination":
        args["destination"] = AccountFactory()
    else:
        args["source"] = Account.objects.create(credit_limit=None)
    before = ledger_totals()
    with pytest.raises(
        IdempotencyConflict, match="was already used, by .* with different details"
    ):
        facade.transfer(idempotency_key="order-1", **args)
    assert ledger_totals() == before


# Reversals ------------------------------------------------------------------------------


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


def test_partial_reversals_until_fully_reversed(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"), merchant_reference="ORD-9")
    first = facade.reverse(trans, amount=Decimal("3.00"))
    assert first.merchant_reference == "ORD-9"
    assert trans.reversible_amount() == Money("7.00", "GBP")
    with pytest.raises(InvalidReversal, match=r"only £7.00 is left"):
        facade.reverse(trans, amount=Decimal("7.01"))
    rest = facade.reverse(trans)
    assert rest.amount == Money("7.00", "GBP")
    with pytest.raises(InvalidReversal, match="already been fully reversed"):
        facade.reverse(trans)
    with pytest.raises(InvalidReversal, match="already been fully reversed"):
        facade.reverse(trans, amount=Decimal("0.01"))
    account.refresh_from_db()
    assert account.balance == Money("0.00", "GBP")


def test_a_reversal_cannot_be_reversed(source, account):
    reversal = facade.reverse(facade.transfer(source, account, Decimal("5.00")))
    with pytest.raises(InvalidReversal, match="is itself a reversal"):
        facade.reverse(reversal)


def test_reversal_needs_the_money_to_still_be_there(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    facade.transfer(account, Account.objects.sales_account(), Decimal("8.00"))
    before = ledger_totals()
    with pytest.raises(InsufficientFunds, match=r"cannot be debited £10\.00: only £2\.00"):
        facade.reverse(trans)
    assert ledger_totals() == before
    facade.reverse(trans, amount=Decimal("2.00"))


def test_reversal_follows_the_account_rules(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    account.freeze()
    with pytest.raises(FrozenAccount, match="is frozen"):
        facade.reverse(trans)


def test_transfer_with_a_parent_must_be_a_real_reversal(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    with pytest.raises(InvalidReversal, match="from its destination back to its source"):
        facade.transfer(source, account, Decimal("1.00"), parent=trans)
    with pytest.raises(InvalidReversal, match="only £10.00 is left"):
        facade.transfer(account, source, Decimal("11.00"), parent=trans)
    reversal = facade.transfer(account, source, Decimal("4.00"), parent=trans)
    assert reversal.parent == trans


def test_reverse_refuses_something_that_is_not_a_saved_transfer(source):
    with pytest.raises(InvalidArgument, match="is not a saved transfer"):
        facade.reverse(Transfer())
    with pytest.raises(InvalidArgument, match="is not a saved transfer"):
        facade.reverse(None)


def test_reverse_with_a_key_is_idempotent(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    first = facade.reverse(trans, amount=Decimal("4.00"), idempotency_key="refund-1")
    again = facade.reverse(trans, amount=Decimal("4.00"), idempotency_key="refund-1")
    assert again == first
    assert trans.reversible_amount() == Money("6.00", "GBP")


def test_reverse_costs_two_statements_more_than_a_transfer(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    with CaptureQueriesContext(connection) as queries:
        facade.reverse(trans, amount=Decimal("1.00"))
    statements = [q["sql"] for q in queries if not is_transaction_control(q["sql"])]
    # The generic path (lock, writes) plus the original, read from the
    # database, and what was already reversed.
    assert len(statements) == 1 + TRANSFER_WRITES + 2, statements


# Signals -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_transfer_posted_is_sent_after_commit_only(source, account):
    received = []

    def receiver(sender, transfer, **kwargs):
        received.append((transfer.pk, Transfer.objects.filter(pk=transfer.pk).exists()))

    signals.transfer_posted.connect(receiver)
    try:
        with transaction.atomic():
            trans = facade.transfer(source, account, Decimal("1.00"))
            assert received == []  # not yet committed
        assert received == [(trans.pk, True)]

        with pytest.raises(RuntimeError, match="the caller's transaction fails"):
            with transaction.atomic():
                facade.transfer(source, account, Decimal("1.00"))
                raise RuntimeError("the caller's transaction fails")
        assert len(received) == 1  # rolled back: no signal
    finally:
        signals.transfer_posted.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_does_not_undo_or_hide_the_transfer(source, account, caplog):
    def receiver(sender, transfer, **kwargs):
        raise ValueError("mail server down")

    heard = []

    def next_receiver(sender, transfer, **kwargs):
        heard.append(transfer.pk)

    signals.transfer_posted.connect(receiver)
    signals.transfer_posted.connect(next_receiver)
    try:
        trans = facade.transfer(source, account, Decimal("1.00"))
    finally:
        signals.transfer_posted.disconnect(receiver)
        signals.transfer_posted.disconnect(next_receiver)
    assert Transfer.objects.filter(pk=trans.pk).exists()
    assert "mail server down" in caplog.text
    assert heard == [trans.pk]  # the receivers after a failing one still run


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
