"""
The ledger's rules (``accounts.rules``): each written once and judged on the
locked rows at the database's time.

Each rule is shown through the operations that apply it (the refusal, its
exception and message, and nothing written), then called directly on rows
built in memory: the rules read no database and no clock.
"""

import datetime
from decimal import Decimal

import pytest
from django.test.utils import override_settings
from django.utils import timezone
from djmoney.money import Money

from accounts import amounts, facade, rules
from accounts.exceptions import (
    AccountExpired,
    AccountNotEmpty,
    AccountNotYetActive,
    CaptureExceedsHold,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    HoldExpired,
    HoldResolved,
    InactiveAccount,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
    ProtectedAccount,
)
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory
from .utils import ledger_state, ledger_totals

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 10, 9, 30, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def row(**columns):
    """An account row as the lock returns it: open, in GBP, with no money."""
    values = {"currency": "GBP", "balance": Decimal(0), "held": Decimal(0)}
    return Account(**{**values, **columns})


# Accounts: currency, status and dates -----------------------------------------------


def test_accounts_in_different_currencies_are_refused(source):
    euro = AccountFactory(currency="EUR")
    before = ledger_totals()
    with pytest.raises(CurrencyMismatch, match=r"\(GBP\) to .* \(EUR\)"):
        facade.transfer(source, euro, Decimal("1.00"))
    assert ledger_totals() == before


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


@pytest.mark.parametrize(
    ("columns", "error", "message"),
    [
        ({"status": "closed"}, ClosedAccount, "is closed"),
        ({"status": "frozen"}, FrozenAccount, "is frozen"),
        ({"start_date": NOW + HOUR}, AccountNotYetActive, "cannot be used before"),
        ({"end_date": NOW - HOUR}, AccountExpired, "expired on"),
    ],
)
def test_check_usable_refuses_a_closed_frozen_or_out_of_window_account(columns, error, message):
    with pytest.raises(error, match=message):
        rules.check_usable(row(**columns), NOW)


def test_check_usable_judges_the_window_at_the_time_it_is_given():
    account = row(start_date=NOW, end_date=NOW + HOUR)
    rules.check_usable(account, NOW)
    rules.check_usable(account, NOW + HOUR)
    with pytest.raises(AccountExpired, match="expired on"):
        rules.check_usable(account, NOW + HOUR + datetime.timedelta(microseconds=1))


def test_skip_window_ignores_the_dates_but_never_the_status():
    rules.check_usable(row(end_date=NOW - HOUR), NOW, skip_window=True)
    with pytest.raises(FrozenAccount, match="is frozen"):
        rules.check_usable(row(status="frozen", end_date=NOW - HOUR), NOW, skip_window=True)


def test_check_pair_refuses_an_amount_in_another_currency_than_the_accounts():
    src, dst = row(), row()
    rules.check_pair(src, dst, "GBP", NOW)
    rules.check_pair(src, dst, None, NOW)
    with pytest.raises(CurrencyMismatch, match="is in EUR but the account uses GBP"):
        rules.check_pair(src, dst, "EUR", NOW)


# Funds: balance, credit and holds ---------------------------------------------------


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


def test_allow_partial_moves_what_the_source_can_cover(fund, sales):
    card = AccountFactory()
    fund(card, "7.25")
    moved = facade.transfer(card, sales, Decimal("20.00"), allow_partial=True)
    assert moved.amount == Money("7.25", "GBP")
    assert Account.objects.get(pk=card.pk).balance == Money("0.00", "GBP")
    with pytest.raises(InsufficientFunds, match="only £0.00 is available"):
        facade.transfer(card, sales, Decimal("20.00"), allow_partial=True)


def test_allow_partial_moves_everything_when_it_can(wallet, sales):
    moved = facade.transfer(wallet, sales, Decimal("20.00"), allow_partial=True)
    assert moved.amount == Money("20.00", "GBP")


def test_allow_partial_respects_holds_and_credit(fund, sales):
    account = AccountFactory(credit_limit=Decimal("5.00"))
    fund(account, "10.00")
    facade.hold(account, sales, Decimal("12.00"))
    moved = facade.transfer(account, sales, Decimal("50.00"), allow_partial=True)
    assert moved.amount == Money("3.00", "GBP")


def test_check_funds_allows_the_balance_plus_credit_less_what_is_held():
    account = row(balance=Decimal("10.00"), held=Decimal("2.00"), credit_limit=Decimal("5.00"))
    assert rules.check_funds(account, Decimal("13.00")) == Decimal("13.00")
    with pytest.raises(InsufficientFunds, match=r"debited £13\.01: only £13\.00 is available"):
        rules.check_funds(account, Decimal("13.01"))


def test_check_funds_with_allow_partial_returns_what_is_available():
    account = row(balance=Decimal("10.00"), held=Decimal("2.00"), credit_limit=Decimal("0"))
    assert rules.check_funds(account, Decimal("50.00"), allow_partial=True) == Decimal("8.00")
    empty = row(balance=Decimal("2.00"), held=Decimal("2.00"), credit_limit=Decimal("0"))
    with pytest.raises(InsufficientFunds, match=r"only £0\.00 is available"):
        rules.check_funds(empty, Decimal("1.00"), allow_partial=True)


def test_check_funds_without_a_credit_limit_allows_anything():
    unlimited = row(balance=Decimal("-5000.00"), credit_limit=None)
    assert rules.check_funds(unlimited, Decimal("1000000")) == Decimal("1000000")


def test_check_storable_refuses_a_balance_at_the_ledgers_limit_either_way():
    below = amounts.LIMIT - Decimal("0.0001")
    rules.check_storable(below)
    rules.check_storable(-below)
    for total in (amounts.LIMIT, -amounts.LIMIT):
        with pytest.raises(InvalidAmount, match="beyond what the ledger stores"):
            rules.check_storable(total, Decimal("1.00"))


# Top-up bounds ----------------------------------------------------------------------


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


# Reversals --------------------------------------------------------------------------


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


def test_transfer_with_a_parent_must_be_a_real_reversal(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    with pytest.raises(InvalidReversal, match="from its destination back to its source"):
        facade.transfer(source, account, Decimal("1.00"), parent=trans)
    with pytest.raises(InvalidReversal, match="only £10.00 is left"):
        facade.transfer(account, source, Decimal("11.00"), parent=trans)
    reversal = facade.transfer(account, source, Decimal("4.00"), parent=trans)
    assert reversal.parent == trans


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


def test_check_reversal_moves_what_is_left_when_no_amount_is_given():
    parent = Transfer(currency="GBP", amount=Decimal("10.00"))
    assert rules.check_reversal(parent, Decimal("3.00"), None) == Decimal("7.00")
    assert rules.check_reversal(parent, Decimal("3.00"), Decimal("7.00")) == Decimal("7.00")
    with pytest.raises(InvalidReversal, match=r"only £7\.00 is left to reverse"):
        rules.check_reversal(parent, Decimal("3.00"), Decimal("7.01"))
    with pytest.raises(InvalidReversal, match="already been fully reversed"):
        rules.check_reversal(parent, Decimal("10.00"), None)


def test_check_reversal_shape_wants_the_original_backwards_and_no_reversal_of_a_reversal():
    parent = Transfer(source_id=1, destination_id=2)
    rules.check_reversal_shape(parent, 2, 1)
    with pytest.raises(InvalidReversal, match="from its destination back to its source"):
        rules.check_reversal_shape(parent, 1, 2)
    with pytest.raises(InvalidReversal, match="is itself a reversal"):
        rules.check_reversal_shape(Transfer(source_id=2, destination_id=1, parent_id=9), 1, 2)


# Captures ---------------------------------------------------------------------------


def test_capture_beyond_the_hold(purchase_and_hold):
    *_, hold = purchase_and_hold
    before = ledger_state()
    with pytest.raises(CaptureExceedsHold, match=r"Cannot capture £10\.01: .* only £10\.00"):
        facade.capture(hold, Decimal("10.01"))
    assert ledger_state() == before


def test_check_capturable_takes_the_whole_hold_when_no_amount_is_given():
    hold = Hold(currency="GBP", amount=Decimal("5.00"), status="active", expires_at=NOW + HOUR)
    assert rules.check_capturable(hold, None, None, NOW) == Decimal("5.00")
    assert rules.check_capturable(hold, Decimal("2.50"), "GBP", NOW) == Decimal("2.50")
    with pytest.raises(CaptureExceedsHold, match=r"reserves only £5\.00"):
        rules.check_capturable(hold, Decimal("5.01"), None, NOW)


def test_check_capturable_refuses_a_hold_past_its_expiry_or_resolved():
    hold = Hold(currency="GBP", amount=Decimal("5.00"), status="active", expires_at=NOW)
    with pytest.raises(HoldExpired, match="can no longer be captured"):
        rules.check_capturable(hold, None, None, NOW)
    hold.status = "released"
    with pytest.raises(HoldResolved, match="is already released"):
        rules.check_capturable(hold, None, None, NOW - HOUR)
    with pytest.raises(HoldResolved, match="is already released"):
        rules.check_active(hold)


# Status changes ----------------------------------------------------------------------


def test_check_status_change_says_whether_there_is_anything_to_write():
    assert rules.check_status_change(row(), "frozen") is True
    assert rules.check_status_change(row(status="frozen"), "frozen") is False
    assert rules.check_status_change(row(status="frozen"), "open") is True


@pytest.mark.parametrize(
    ("columns", "status", "error", "message"),
    [
        ({"role": "source"}, "frozen", ProtectedAccount, "core account and cannot be frozen"),
        ({"role": "sales"}, "closed", ProtectedAccount, "core account and cannot be closed"),
        ({"status": "closed"}, "open", ClosedAccount, "is closed"),
        ({"balance": Decimal("0.01")}, "closed", AccountNotEmpty, r"its balance is £0\.01"),
        ({"balance": Decimal("-1")}, "closed", AccountNotEmpty, r"its balance is -£1\.00"),
        ({"held": Decimal("3")}, "closed", AccountNotEmpty, r"£3\.00 is held by active holds"),
    ],
)
def test_check_status_change_refusals(columns, status, error, message):
    with pytest.raises(error, match=message):
        rules.check_status_change(row(**columns), status)
