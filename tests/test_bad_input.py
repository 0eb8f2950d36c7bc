"""
Every bad input the facade can receive: each gives its documented exception
and writes nothing.
"""

from decimal import Decimal

import pytest
from djmoney.money import Money
from moneyed import Money as PlainMoney

from accounts import facade
from accounts.exceptions import (
    AccountException,
    CaptureExceedsHold,
    CurrencyMismatch,
    InvalidAccount,
    InvalidAmount,
    InvalidArgument,
    SameAccount,
)
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory

pytestmark = pytest.mark.django_db

AMOUNTS = [
    ("float", 10.0, InvalidAmount, "has type float"),
    ("int", 10, InvalidAmount, "has type int"),
    ("bool", True, InvalidAmount, "has type bool"),
    ("str", "10.00", InvalidAmount, "has type str"),
    ("bytes", b"10", InvalidAmount, "has type bytes"),
    ("None", None, InvalidAmount, "has type NoneType"),
    ("list", [Decimal(1)], InvalidAmount, "has type list"),
    ("NaN", Decimal("NaN"), InvalidAmount, "not a finite number"),
    ("signalling NaN", Decimal("sNaN"), InvalidAmount, "not a finite number"),
    ("infinity", Decimal("Infinity"), InvalidAmount, "not a finite number"),
    ("minus infinity", Decimal("-Infinity"), InvalidAmount, "not a finite number"),
    ("zero", Decimal("0"), InvalidAmount, "greater than zero"),
    ("minus zero", Decimal("-0.00"), InvalidAmount, "greater than zero"),
    ("negative", Decimal("-0.01"), InvalidAmount, "greater than zero"),
    ("too many decimals", Decimal("1.001"), InvalidAmount, "more decimal places than GBP"),
    ("tiny", Decimal("1E-30"), InvalidAmount, "more decimal places than GBP"),
    ("beyond the column", Decimal("1E+15"), InvalidAmount, "too large"),
    ("huge", Decimal("9" * 40), InvalidAmount, "too large"),
    ("negative money", Money("-1.00", "GBP"), InvalidAmount, "greater than zero"),
    ("money NaN", Money(Decimal("NaN"), "GBP"), InvalidAmount, "not a finite number"),
    ("wrong currency", Money("1.00", "EUR"), CurrencyMismatch, "is in EUR"),
    ("plain moneyed, wrong currency", PlainMoney("1.00", "USD"), CurrencyMismatch, "is in USD"),
    ("money, too many decimals", Money("1.005", "GBP"), InvalidAmount, "more decimal places"),
]


def written():
    return (
        Transfer.objects.count(),
        Hold.objects.count(),
        sorted(Account.objects.values_list("pk", "balance", "held", "status")),
    )


@pytest.fixture
def accounts(fund):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    purchase = facade.transfer(wallet, shop, Decimal("50.00"))
    hold = facade.hold(wallet, shop, Decimal("10.00"))
    return wallet, shop, purchase, hold


def calls(wallet, shop, purchase, hold, amount):
    return {
        "transfer": lambda: facade.transfer(wallet, shop, amount),
        "partial transfer": lambda: facade.transfer(wallet, shop, amount, allow_partial=True),
        "reverse": lambda: facade.reverse(purchase, amount=amount),
        "hold": lambda: facade.hold(wallet, shop, amount),
        "capture": lambda: facade.capture(hold, amount),
    }


OPERATIONS = ["transfer", "partial transfer", "reverse", "hold", "capture"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("label", "amount", "error", "message"), AMOUNTS, ids=[a[0] for a in AMOUNTS]
)
def test_bad_amounts(accounts, operation, label, amount, error, message):
    if amount is None and operation in ("reverse", "capture"):
        pytest.skip("None means 'all that is left' for %s" % operation)
    before = written()
    with pytest.raises(error, match=message):
        calls(*accounts, amount)[operation]()
    assert written() == before


def test_capture_beyond_the_hold(accounts):
    *_, hold = accounts
    before = written()
    with pytest.raises(CaptureExceedsHold, match=r"Cannot capture £10\.01: .* only £10\.00"):
        facade.capture(hold, Decimal("10.01"))
    assert written() == before


def bad_accounts():
    deleted = AccountFactory()
    Account.objects.filter(pk=deleted.pk).delete()
    return [
        ("None", None, InvalidAccount, "must be an Account, got None"),
        ("a string", "12", InvalidAccount, "must be an Account, got '12'"),
        ("a float", 12.0, InvalidAccount, "must be an Account, got 12.0"),
        ("a bool", True, InvalidAccount, "must be an Account, got True"),
        ("a queryset", Account.objects.none(), InvalidAccount, "must be an Account"),
        ("unsaved", Account(), InvalidAccount, "not saved yet"),
        ("deleted", deleted, InvalidAccount, "does not exist"),
        ("a missing id", 10**9, InvalidAccount, "does not exist"),
    ]


@pytest.mark.parametrize("position", ["source", "destination"])
@pytest.mark.parametrize("operation", ["transfer", "hold"])
def test_bad_accounts(accounts, position, operation):
    wallet, shop, *_ = accounts
    call = {"transfer": facade.transfer, "hold": facade.hold}[operation]
    for label, bad, error, message in bad_accounts():
        before = written()
        pair = (bad, shop) if position == "source" else (wallet, bad)
        with pytest.raises(error, match=message):
            call(*pair, Decimal("1.00"))
        assert written() == before, label


def test_the_same_account_twice(accounts):
    wallet, *_ = accounts
    before = written()
    for call in (facade.transfer, facade.hold):
        with pytest.raises(SameAccount, match="to itself"):
            call(wallet, wallet, Decimal("1.00"))
    with pytest.raises(SameAccount, match="to itself"):
        facade.transfer(wallet.pk, wallet, Decimal("1.00"))
    assert written() == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: facade.reverse(None), "is not a saved transfer"),
        (lambda a: facade.reverse(Transfer()), "is not a saved transfer"),
        (lambda a: facade.reverse(a[3]), "is not a saved transfer"),
        (lambda a: facade.capture(None), "is not a saved hold"),
        (lambda a: facade.capture(Hold()), "is not a saved hold"),
        (lambda a: facade.capture(a[2]), "is not a saved hold"),
        (lambda a: facade.release("hold"), "is not a saved hold"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), parent="x"), "is not a saved"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key=5), "must be a string"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key=""), "not be empty"),
        (
            lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key="k" * 129),
            "129 characters long",
        ),
        (
            lambda a: facade.transfer(a[0], a[1], Decimal(1), merchant_reference=["x"]),
            "must be a string",
        ),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), description=7), "must be a string"),
        (lambda a: facade.hold(a[0], a[1], Decimal(1), expires_at="tomorrow"), "aware datetime"),
        (lambda a: facade.capture(a[3], idempotency_key=b"k"), "must be a string"),
    ],
)
def test_bad_arguments(accounts, call, message):
    before = written()
    with pytest.raises(InvalidArgument, match=message):
        call(accounts)
    assert written() == before


def test_every_refusal_is_an_account_exception(accounts):
    wallet, shop, purchase, hold = accounts
    for call in calls(wallet, shop, purchase, hold, 1.5).values():
        with pytest.raises(InvalidAmount, match="has type float") as info:
            call()
        assert isinstance(info.value, AccountException)
