import datetime
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djmoney.money import Money

from accounts import expiry, facade
from accounts import holds as engine
from accounts.exceptions import (
    CaptureExceedsHold,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    HoldExpired,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    LedgerImmutable,
    SameAccount,
)
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory
from .utils import (
    TRANSFER_STATEMENTS,
    TRANSFER_WRITES,
    assert_ledger_consistent,
    is_transaction_control,
    ledger_time,
    ledger_totals,
)

pytestmark = pytest.mark.django_db


def stored(account):
    return Account.objects.get(pk=account.pk)


def later(**kwargs):
    return timezone.now() + datetime.timedelta(**kwargs)


# Placing a hold -----------------------------------------------------------------------


def test_a_hold_reserves_money_without_changing_the_balance(wallet, sales, staff_member):
    hold = facade.hold(
        wallet, sales, Decimal("30.00"), merchant_reference="ORDER-7", user=staff_member
    )
    account = stored(wallet)
    assert account.balance == Money("100.00", "GBP")
    assert account.held == Money("30.00", "GBP")
    assert account.available_amount == Money("70.00", "GBP")
    assert wallet.held == Money("30.00", "GBP")  # the instance passed in follows
    assert hold.status == Hold.Status.ACTIVE
    assert (hold.amount, hold.merchant_reference, hold.username) == (
        Money("30.00", "GBP"),
        "ORDER-7",
        "staff",
    )
    assert Transfer.objects.filter(source=wallet).count() == 0


def test_every_other_debit_sees_the_hold(wallet, sales):
    facade.hold(wallet, sales, Decimal("80.00"))
    with pytest.raises(InsufficientFunds, match="only £20.00 is available"):
        facade.transfer(wallet, sales, Decimal("20.01"))
    with pytest.raises(InsufficientFunds, match="only £20.00 is available"):
        facade.hold(wallet, sales, Decimal("20.01"))
    facade.transfer(wallet, sales, Decimal("20.00"))
    assert stored(wallet).available_amount == Money("0.00", "GBP")


def test_a_hold_is_validated_like_a_transfer(wallet, sales):
    before = ledger_totals(), Hold.objects.count()
    with pytest.raises(InvalidAmount, match="has type float"):
        facade.hold(wallet, sales, 1.5)
    with pytest.raises(InvalidAmount, match="more decimal places"):
        facade.hold(wallet, sales, Decimal("1.001"))
    with pytest.raises(SameAccount, match="to itself"):
        facade.hold(wallet, wallet, Decimal("1.00"))
    with pytest.raises(CurrencyMismatch, match=r"\(GBP\) to Sales \(EUR\)"):
        facade.hold(wallet, Account.objects.sales_account("EUR"), Decimal("1.00"))
    with pytest.raises(InsufficientFunds, match=r"only £100\.00 is available"):
        facade.hold(wallet, sales, Decimal("100.01"))
    wallet.freeze()
    with pytest.raises(FrozenAccount, match="is frozen"):
        facade.hold(wallet, sales, Decimal("1.00"))
    assert (ledger_totals(), Hold.objects.count()) == before


@pytest.mark.parametrize(
    "expires_at",
    [
        datetime.datetime(2030, 1, 1),  # naive
        timezone.now() - datetime.timedelta(seconds=1),  # past
        "2030-01-01",
    ],
)
def test_expires_at_must_be_a_future_aware_datetime(wallet, sales, expires_at):
    with pytest.raises(InvalidArgument, match="must be an aware datetime in the future"):
        facade.hold(wallet, sales, Decimal("1.00"), expires_at=expires_at)


def test_hold_with_the_same_key_is_returned_again(wallet, sales):
    first = facade.hold(wallet, sales, Decimal("10.00"), idempotency_key="auth-1")
    again = facade.hold(wallet, sales, Decimal("10.00"), idempotency_key="auth-1")
    assert again.pk == first.pk
    assert stored(wallet).held == Money("10.00", "GBP")
    with pytest.raises(IdempotencyConflict, match="'auth-1' was already used"):
        facade.hold(wallet, sales, Decimal("11.00"), idempotency_key="auth-1")


def count_statements(call):
    with CaptureQueriesContext(connection) as queries:
        call()
    return len([q for q in queries if not is_transaction_control(q["sql"])])


def test_hold_capture_and_release_cost_a_fixed_number_of_statements(wallet, sales):
    # lock both accounts, insert the hold, update held
    assert count_statements(lambda: facade.hold(wallet, sales, Decimal("1.00"))) == 3
    first, second = (facade.hold(wallet, sales, Decimal("1.00")) for _ in range(2))
    # read the hold's account, lock it, lock the hold, update held, update the hold
    assert count_statements(lambda: facade.release(first)) == 5
    # read the hold's accounts, lock them and the hold, the transfer's writes,
    # update the hold
    assert count_statements(lambda: facade.capture(second)) == 4 + TRANSFER_WRITES
    # a debit on an account with holds adds one query (holds past their expiry)
    debit = count_statements(lambda: facade.transfer(wallet, sales, Decimal("1.00")))
    if connection.vendor == "postgresql":
        assert debit == TRANSFER_STATEMENTS  # read inside the one statement
    else:
        assert debit == TRANSFER_STATEMENTS + 1


# Capture -------------------------------------------------------------------------------


def test_capture_turns_the_whole_hold_into_a_transfer(wallet, sales, staff_member):
    hold = facade.hold(wallet, sales, Decimal("30.00"), merchant_reference="ORDER-7")
    captured = facade.capture(hold, user=staff_member)
    account = stored(wallet)
    assert account.balance == Money("70.00", "GBP")
    assert account.held == Money("0.00", "GBP")
    assert captured.amount == Money("30.00", "GBP")
    assert captured.merchant_reference == "ORDER-7"
    hold.refresh_from_db()
    assert hold.status == Hold.Status.CAPTURED
    assert hold.capture == captured and captured.hold == hold
    assert hold.resolved_by == "staff" and hold.resolved_at is not None
    assert hold.captured_amount == Money("30.00", "GBP")
    assert_ledger_consistent()


def test_partial_capture_releases_the_remainder_at_once(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("30.00"))
    captured = facade.capture(hold, Decimal("12.50"), description="Dispatched in part")
    account = stored(wallet)
    assert captured.amount == Money("12.50", "GBP")
    assert captured.description == "Dispatched in part"
    assert account.balance == Money("87.50", "GBP")
    assert account.held == Money("0.00", "GBP")
    assert account.available_amount == Money("87.50", "GBP")


def test_a_hold_resolves_exactly_once(wallet, sales):
    captured = facade.hold(wallet, sales, Decimal("10.00"))
    facade.capture(captured)
    with pytest.raises(HoldResolved, match="is already captured"):
        facade.capture(captured)
    with pytest.raises(HoldResolved, match="is already captured"):
        facade.release(captured)

    released = facade.hold(wallet, sales, Decimal("10.00"))
    facade.release(released)
    with pytest.raises(HoldResolved, match="is already released"):
        facade.release(released)
    with pytest.raises(HoldResolved, match="is already released"):
        facade.capture(Hold.objects.get(pk=released.pk))  # a fresh instance too
    assert stored(wallet).balance == Money("90.00", "GBP")
    assert stored(wallet).held == Money("0.00", "GBP")


def test_capturing_more_than_the_hold_is_refused(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("10.00"))
    with pytest.raises(CaptureExceedsHold, match=r"Cannot capture £10.01: hold .* reserves only"):
        facade.capture(hold, Decimal("10.01"))
    with pytest.raises(InvalidAmount, match="must be greater than zero"):
        facade.capture(hold, Decimal("0"))
    with pytest.raises(CurrencyMismatch, match="in EUR but the account uses GBP"):
        facade.capture(hold, Money("5.00", "EUR"))
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.ACTIVE


def test_capture_does_not_need_funds_the_hold_reserved(fund, sales):
    account = AccountFactory(credit_limit=Decimal("20.00"))
    hold = facade.hold(account, sales, Decimal("20.00"))
    with pytest.raises(InsufficientFunds, match=r"only £0\.00 is available"):
        facade.transfer(account, sales, Decimal("0.01"))
    facade.capture(hold)
    assert stored(account).balance == Money("-20.00", "GBP")


def test_capture_needs_usable_accounts(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("10.00"))
    wallet.freeze()
    with pytest.raises(FrozenAccount, match="is frozen"):
        facade.capture(hold)
    wallet.thaw()
    facade.capture(hold)


def test_capture_with_a_key_is_idempotent(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("10.00"))
    first = facade.capture(hold, Decimal("4.00"), idempotency_key="cap-1")
    again = facade.capture(hold, Decimal("4.00"), idempotency_key="cap-1")
    assert again == first
    with pytest.raises(IdempotencyConflict, match="'cap-1' was already used"):
        facade.capture(hold, Decimal("5.00"), idempotency_key="cap-1")
    other = facade.hold(wallet, sales, Decimal("1.00"))
    with pytest.raises(IdempotencyConflict, match="'cap-1' was already used"):
        facade.capture(other, idempotency_key="cap-1")


def test_refused_captures_write_nothing(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("10.00"))
    before = ledger_totals(), list(Hold.objects.values_list("status", flat=True))
    for call, error, message in (
        (lambda: facade.capture(hold, Decimal("11.00")), CaptureExceedsHold, "reserves only"),
        (lambda: facade.capture(hold, 5), InvalidAmount, "has type int"),
        (lambda: facade.capture("not a hold"), InvalidArgument, "is not a saved hold"),
    ):
        with pytest.raises(error, match=message):
            call()
    assert (ledger_totals(), list(Hold.objects.values_list("status", flat=True))) == before


# Expiry -------------------------------------------------------------------------------


def test_an_expired_hold_reserves_nothing_and_cannot_be_captured(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("60.00"), expires_at=later(minutes=5))
    with pytest.raises(InsufficientFunds, match=r"only £40\.00 is available"):
        facade.transfer(wallet, sales, Decimal("50.00"))
    with ledger_time(later(minutes=6)):
        facade.transfer(wallet, sales, Decimal("50.00"))  # the hold no longer counts
        # ... and the debit that relied on that marked it expired, for good.
        with pytest.raises(HoldResolved, match="is already expired"):
            facade.capture(hold)
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.EXPIRED
    assert stored(wallet).held == Money("0.00", "GBP")


def test_a_hold_past_its_expiry_cannot_be_captured(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("60.00"), expires_at=later(minutes=5))
    with ledger_time(later(minutes=6)):
        with pytest.raises(HoldExpired, match="can no longer be captured"):
            facade.capture(hold)
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.ACTIVE  # until a sweep or debit


def test_an_expired_hold_can_still_be_released(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("60.00"), expires_at=later(minutes=5))
    with ledger_time(later(minutes=6)):
        facade.release(hold)
    assert stored(wallet).held == Money("0.00", "GBP")


def test_release_expired_holds_marks_them_and_frees_the_money(wallet, sales):
    lapsing = [
        facade.hold(wallet, sales, Decimal("10.00"), expires_at=later(minutes=5)) for _ in range(3)
    ]
    lasting = facade.hold(wallet, sales, Decimal("5.00"), expires_at=later(days=5))
    forever = facade.hold(wallet, sales, Decimal("1.00"))
    with ledger_time(later(minutes=6)):
        result = expiry.release_expired_holds(batch_size=2)
    assert result.expired == 3
    assert result.freed == {"GBP": Decimal("30.00")}
    assert {h.status for h in Hold.objects.filter(pk__in=[h.pk for h in lapsing])} == {"expired"}
    assert Hold.objects.get(pk=lasting.pk).status == "active"
    assert Hold.objects.get(pk=forever.pk).status == "active"
    assert stored(wallet).held == Money("6.00", "GBP")
    with ledger_time(later(minutes=6)):
        again = expiry.release_expired_holds()
    assert again.expired == 0
    with pytest.raises(HoldResolved, match="is already expired"):
        facade.release(lapsing[0])


def test_release_expired_holds_command(wallet, sales):
    facade.hold(wallet, sales, Decimal("10.00"), expires_at=later(minutes=5))
    out = StringIO()
    call_command("release_expired_holds", "--dry-run", "--as-of", later(minutes=6).isoformat(),
                 stdout=out)  # fmt: skip
    assert "Would expire 1 hold(s)" in out.getvalue()
    assert "would free 10.00 GBP" in out.getvalue()
    assert stored(wallet).held == Money("10.00", "GBP")  # dry run wrote nothing

    # A week ahead expired a hold not yet due: a real run refuses the future.
    with pytest.raises(CommandError, match="is in the future") as info:
        call_command("release_expired_holds", "--as-of", later(days=7).isoformat())
    assert info.value.returncode == 2
    assert stored(wallet).held == Money("10.00", "GBP")

    out = StringIO()
    as_of = later(minutes=6).isoformat()
    with ledger_time(later(minutes=7)):
        call_command("release_expired_holds", "--as-of", as_of, "-v", "2", stdout=out)
    assert "Expired 1 hold(s)" in out.getvalue()
    hold = Hold.objects.get()
    assert "expired hold %s on account #%s: freed 10.00 GBP" % (hold.reference, wallet.pk) in (
        out.getvalue())  # fmt: skip
    assert stored(wallet).held == Money("0.00", "GBP")
    out = StringIO()
    call_command("release_expired_holds", "-v", "0", stdout=out)
    assert out.getvalue() == ""

    with pytest.raises(CommandError, match="is not an ISO date"):
        call_command("release_expired_holds", "--as-of", "yesterday")


def test_a_failure_on_one_hold_does_not_stop_the_sweep(wallet, sales):
    holds = [
        facade.hold(wallet, sales, Decimal("1.00"), expires_at=later(minutes=1)) for _ in range(3)
    ]
    real = engine.expire

    def flaky(using, hold_id, **kwargs):
        if hold_id == holds[1].pk:
            raise RuntimeError("injected")
        return real(using, hold_id, **kwargs)

    with mock.patch.object(engine, "expire", flaky), ledger_time(later(minutes=2)):
        result = expiry.release_expired_holds()
    assert result.expired == 2
    assert [h.pk for h, _ in result.failures] == [holds[1].pk]
    assert Hold.objects.get(pk=holds[1].pk).status == "active"
    assert stored(wallet).held == Money("1.00", "GBP")


# The account and its statement -----------------------------------------------------------


def test_statement_lists_pending_holds_separately(wallet, sales):
    pending = facade.hold(wallet, sales, Decimal("5.00"))
    facade.release(facade.hold(wallet, sales, Decimal("6.00")))
    facade.hold(wallet, sales, Decimal("7.00"), expires_at=later(seconds=30))
    with ledger_time(later(minutes=1)):
        statement = stored(wallet).statement()
        assert list(statement.pending_holds) == [pending]
    assert all(leg.transfer.source_id != wallet.pk for leg in statement)


def test_closed_destination_blocks_capture(wallet):
    shop = AccountFactory()
    hold = facade.hold(wallet, shop, Decimal("5.00"))
    shop.close()
    with pytest.raises(ClosedAccount, match="is closed"):
        facade.capture(hold)
    facade.release(hold)


def test_holds_cannot_be_changed_around_the_facade(wallet, sales):
    hold = facade.hold(wallet, sales, Decimal("5.00"))
    with pytest.raises(LedgerImmutable, match="Holds change state only through accounts.facade"):
        Hold.objects.filter(pk=hold.pk).update(status="released")
    with pytest.raises(LedgerImmutable, match="Holds cannot be deleted; release them"):
        hold.delete()
    with pytest.raises(LedgerImmutable, match="Holds cannot be deleted; release them"):
        Hold.objects.all().delete()
    hold.status = "released"
    with pytest.raises(LedgerImmutable, match="hold rows are written only by accounts.facade"):
        hold.save()
    with pytest.raises(LedgerImmutable, match="held can only be changed by accounts.facade"):
        Account.objects.filter(pk=wallet.pk).update(held=Decimal("0"))
    assert stored(wallet).held == Money("5.00", "GBP")
