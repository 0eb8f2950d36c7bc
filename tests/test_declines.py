"""Declined payments (accounts.declines): business refusals recorded when asked to."""

import datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import override_settings
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import (
    AccountExpired,
    CaptureExceedsHold,
    CurrencyMismatch,
    FrozenAccount,
    HoldExpired,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
    LedgerImmutable,
    SpendingLimitExceeded,
)
from accounts.models import Account, Decline, SpendingLimit

from .factories import AccountFactory, UserFactory
from .utils import ledger_time

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("recording")]

NOW = datetime.datetime(2026, 6, 10, 12, tzinfo=datetime.UTC)


@pytest.fixture
def recording(settings):
    settings.ACCOUNTS_RECORD_DECLINES = True


@pytest.fixture
def shop(db):
    return Account.objects.sales_account()


@pytest.fixture
def card(fund):
    """A card wallet with £100.00 and no credit, limited to £40.00 a day."""
    account = AccountFactory(name="Alice's card", credit_limit=Decimal("0"))
    fund(account, "100.00")
    SpendingLimit.objects.create(account=account, period="day", amount=Decimal("40.00"))
    return account


def test_a_refused_payment_is_recorded_with_why_and_still_raised(card, shop):
    cashier = UserFactory(username="till-3")
    with pytest.raises(SpendingLimitExceeded, match="daily spending limit is £40.00"):
        facade.transfer(
            card,
            shop,
            Decimal("45.00"),
            merchant_reference="order-77",
            description="Teapot",
            user=cashier,
            idempotency_key="pay-77",
        )
    decline = Decline.objects.get()
    assert (decline.operation, decline.source, decline.destination) == ("transfer", card, shop)
    assert (decline.amount, decline.currency) == (Money("45.00", "GBP"), "GBP")
    assert decline.reason == "spending_limit_reached"
    assert decline.facts == {
        "available": "40.00",
        "period": "day",
        "limit": "40.00",
        "used": "0.00",
    }
    assert decline.reason_text == "daily limit reached"
    assert (decline.merchant_reference, decline.description) == ("order-77", "Teapot")
    assert (decline.user, decline.username, decline.idempotency_key) == (
        cashier,
        "till-3",
        "pay-77",
    )
    assert "daily spending limit" in decline.message
    assert list(Decline.objects.for_account(card)) == [decline]
    card.refresh_from_db()
    assert card.balance == Money("100.00", "GBP")  # nothing moved


def test_the_decline_carries_the_databases_time(card, shop):
    with ledger_time(NOW):
        with pytest.raises(SpendingLimitExceeded, match="daily"):
            facade.transfer(card, shop, Decimal("41.00"))
    assert Decline.objects.get().created == NOW


def test_nothing_is_recorded_unless_the_setting_is_on(card, shop, settings):
    settings.ACCOUNTS_RECORD_DECLINES = False
    with pytest.raises(SpendingLimitExceeded, match="daily"):
        facade.transfer(card, shop, Decimal("45.00"))
    assert not Decline.objects.exists()


def test_each_kind_of_refusal_has_its_reason(card, shop, fund):
    poor = AccountFactory(credit_limit=Decimal("0"))
    with pytest.raises(InsufficientFunds, match="only £0.00 is available"):
        facade.transfer(poor, shop, Decimal("1.00"))
    card.freeze()
    with pytest.raises(FrozenAccount, match="frozen"):
        facade.hold(card, shop, Decimal("1.00"))
    expired = AccountFactory(end_date=datetime.date(2020, 1, 1))
    with pytest.raises(AccountExpired, match="expired"):
        facade.transfer(expired, shop, Decimal("1.00"))
    found = list(Decline.objects.order_by("pk").values_list("operation", "reason"))
    assert found == [
        ("transfer", "insufficient_funds"),
        ("hold", "account_frozen"),
        ("transfer", "account_expired"),
    ]
    assert [d.reason_text for d in Decline.objects.order_by("pk")] == [
        "not enough money available",
        "account frozen",
        "account expired",
    ]


def test_refused_captures_name_their_hold_and_its_accounts(card, shop):
    with ledger_time(NOW):
        lapsing = facade.hold(card, shop, Decimal("10.00"), expires_at=NOW + HOUR)
        kept = facade.hold(card, shop, Decimal("10.00"))
    with ledger_time(NOW + 2 * HOUR):
        with pytest.raises(HoldExpired, match="expired"):
            facade.capture(lapsing)
        with pytest.raises(CaptureExceedsHold, match="reserves only £10.00"):
            facade.capture(kept, amount=Decimal("11.00"))
        facade.release(kept)
        with pytest.raises(HoldResolved, match="released"):
            facade.capture(kept)
    declines = list(Decline.objects.order_by("pk"))
    assert [(d.operation, d.reason, d.hold) for d in declines] == [
        ("capture", "hold_expired", lapsing),
        ("capture", "capture_exceeds_hold", kept),
        ("capture", "hold_resolved", kept),
    ]
    assert {(d.source, d.destination) for d in declines} == {(card, shop)}
    assert declines[0].amount is None  # "all of it" was asked


def test_bad_input_and_reversals_are_not_declines(card, shop, fund):
    facade.transfer(card, shop, Decimal("5.00"), idempotency_key="k")
    with pytest.raises(InvalidAmount, match="more decimal places"):
        facade.transfer(card, shop, Decimal("1.001"))
    with pytest.raises(CurrencyMismatch, match="EUR"):
        facade.transfer(card, shop, Money("1.00", "EUR"))
    with pytest.raises(IdempotencyConflict, match="'k' was already used"):
        facade.transfer(card, shop, Decimal("6.00"), idempotency_key="k")
    top_up = fund(AccountFactory(credit_limit=Decimal("0")), "3.00")
    facade.transfer(top_up.destination, shop, Decimal("3.00"))
    with pytest.raises(InsufficientFunds, match="only £0.00"):
        facade.reverse(top_up)  # the money is gone: an operator's refusal, not a payment's
    with pytest.raises(InvalidReversal, match="only £"):
        facade.reverse(top_up, amount=Decimal("4.00"))
    assert not Decline.objects.exists()


def test_a_linked_batch_records_the_request_that_was_refused(card, shop):
    with pytest.raises(SpendingLimitExceeded, match="daily"):
        facade.transfer_many(
            [
                facade.TransferRequest(card, shop, Decimal("30.00"), merchant_reference="a"),
                facade.TransferRequest(card, shop, Decimal("30.00"), merchant_reference="b"),
            ]
        )
    decline = Decline.objects.get()
    assert (decline.operation, decline.merchant_reference, decline.amount) == (
        "batch",
        "b",
        Money("30.00", "GBP"),
    )


def test_an_independent_batch_records_each_refused_request(card, shop):
    poor = AccountFactory(credit_limit=Decimal("0"))
    batch = facade.transfer_many(
        [
            facade.TransferRequest(card, shop, Decimal("30.00")),
            facade.TransferRequest(poor, shop, Decimal("1.00")),
            facade.TransferRequest(card, shop, Decimal("30.00")),
        ],
        atomic=False,
    )
    assert [type(r).__name__ for r in batch.results] == [
        "Transfer",
        "InsufficientFunds",
        "SpendingLimitExceeded",
    ]
    assert list(Decline.objects.order_by("pk").values_list("source", "reason")) == [
        (poor.pk, "insufficient_funds"),
        (card.pk, "spending_limit_reached"),
    ]


def test_a_refused_repayment_is_recorded(card, shop):
    in_debt = AccountFactory(credit_limit=Decimal("100.00"))
    facade.transfer(in_debt, shop, Decimal("80.00"))
    with pytest.raises(SpendingLimitExceeded, match="daily"):
        facade.repay(card, in_debt, Decimal("45.00"))
    assert Decline.objects.get().operation == "repay"


def test_a_decline_goes_with_the_callers_transaction_when_it_rolls_back(card, shop):
    with transaction.atomic():
        with pytest.raises(SpendingLimitExceeded, match="daily"):
            facade.transfer(card, shop, Decimal("45.00"))
        assert Decline.objects.count() == 1  # written in the caller's transaction...
        transaction.set_rollback(True)
    assert not Decline.objects.exists()  # ...and rolled back with it
    with transaction.atomic():
        with pytest.raises(SpendingLimitExceeded, match="daily"):
            facade.transfer(card, shop, Decimal("45.00"))
    assert Decline.objects.count() == 1  # the caller's transaction committed: kept


def test_declines_are_append_only(card, shop):
    with pytest.raises(SpendingLimitExceeded, match="daily"):
        facade.transfer(card, shop, Decimal("45.00"))
    decline = Decline.objects.get()
    with pytest.raises(LedgerImmutable, match="written only by accounts.facade"):
        decline.save()
    with pytest.raises(LedgerImmutable, match="cannot be deleted"):
        decline.delete()
    with pytest.raises(LedgerImmutable, match="append-only"):
        Decline.objects.update(reason="x")
    with pytest.raises(DatabaseError, match="UPDATE of accounts_decline .*append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_decline SET reason = 'x' WHERE id = %s", [decline.pk])
    assert Decline.objects.erase_personal_data() == 1


@override_settings(ACCOUNTS_RECORD_DECLINES="yes")
def test_the_setting_is_checked():
    from django.core import checks

    found = [m.id for m in checks.run_checks(databases=[]) if m.id.startswith("accounts.")]
    assert found == ["accounts.E021"]


HOUR = datetime.timedelta(hours=1)
