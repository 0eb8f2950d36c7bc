"""
Money amounts (``accounts.amounts``): the one place that validates them.

Every operation takes ``Decimal`` or ``Money`` and nothing else, refuses
what is not a positive finite amount its columns store exactly, and never
rounds.
"""

from decimal import Decimal

import pytest
from djmoney.money import Money
from moneyed import Money as PlainMoney

from accounts import amounts, facade
from accounts.exceptions import (
    AccountException,
    CurrencyMismatch,
    InvalidAmount,
    UnsupportedCurrency,
)
from accounts.models import Account

from .factories import AccountFactory
from .utils import ledger_state, ledger_totals

pytestmark = pytest.mark.django_db


# Every operation refuses a bad amount and writes nothing ------------------------------


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
def test_bad_amounts(purchase_and_hold, operation, label, amount, error, message):
    if amount is None and operation in ("reverse", "capture"):
        pytest.skip("None means 'all that is left' for %s" % operation)
    before = ledger_state()
    with pytest.raises(error, match=message):
        calls(*purchase_and_hold, amount)[operation]()
    assert ledger_state() == before


def test_every_refusal_is_an_account_exception(purchase_and_hold):
    wallet, shop, purchase, hold = purchase_and_hold
    for call in calls(wallet, shop, purchase, hold, 1.5).values():
        with pytest.raises(InvalidAmount, match="has type float") as info:
            call()
        assert isinstance(info.value, AccountException)


# Through a transfer --------------------------------------------------------------------


def test_transfer_accepts_money_in_the_accounts_currency(source, account):
    trans = facade.transfer(source, account, Money("3.20", "GBP"))
    assert trans.amount == Money("3.20", "GBP")


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


def test_money_in_another_currency_is_refused(source, account):
    with pytest.raises(CurrencyMismatch, match="is in EUR but the account uses GBP"):
        facade.transfer(source, account, Money("1.00", "EUR"))


# The functions ------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "places"), [("GBP", 2), ("EUR", 2), ("JPY", 0), ("BHD", 3)])
def test_currency_places_is_the_minor_unit_of_the_currency(code, places):
    assert amounts.currency_places(code) == places


@pytest.mark.parametrize("code", ["XYZ", "gbp", "", None])
def test_an_unknown_currency_has_no_places_and_is_not_known(code):
    with pytest.raises(UnsupportedCurrency, match="Unknown currency code"):
        amounts.currency_places(code)
    assert amounts.is_known_currency(code) is False


def test_a_known_currency_is_known_even_when_accounts_may_not_use_it():
    assert amounts.is_known_currency("USD") is True
    assert amounts.check_currency("EUR") == "EUR"
    with pytest.raises(UnsupportedCurrency, match=r"'USD' is not one of ACCOUNTS_CURRENCIES"):
        amounts.check_currency("USD")
    with pytest.raises(UnsupportedCurrency, match=r"None is not one of ACCOUNTS_CURRENCIES"):
        amounts.check_currency(None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.5"), (Decimal("12.5"), None)),
        (Money("3.20", "EUR"), (Decimal("3.20"), "EUR")),
        (PlainMoney("1", "USD"), (Decimal("1"), "USD")),
        (Decimal("99999999999.9999"), (Decimal("99999999999.9999"), None)),
    ],
)
def test_parse_amount_returns_the_amount_and_the_currency_it_carried(value, expected):
    assert amounts.parse_amount(value) == expected


def test_parse_amount_refuses_the_limit_itself():
    with pytest.raises(InvalidAmount, match="too large: amounts must be below"):
        amounts.parse_amount(amounts.LIMIT)


@pytest.mark.parametrize("amount", ["10", "10.5", "10.50", "10.5000"])
def test_check_places_accepts_what_the_currency_has_trailing_zeros_included(amount):
    amounts.check_places(Decimal(amount), "GBP")


@pytest.mark.parametrize(("amount", "currency"), [("10.505", "GBP"), ("0.5", "JPY")])
def test_check_places_refuses_more_places_and_names_what_was_checked(amount, currency):
    with pytest.raises(
        InvalidAmount, match=r"^The credit limit %s has more decimal places" % amount
    ):
        amounts.check_places(Decimal(amount), currency, what="The credit limit")


def test_check_same_currency_lets_a_plain_decimal_through():
    amounts.check_same_currency(None, "GBP", what="The amount")
    amounts.check_same_currency("GBP", "GBP", what="The amount")
    with pytest.raises(CurrencyMismatch, match="^The limit is in EUR but the account uses GBP"):
        amounts.check_same_currency("EUR", "GBP", what="The limit")


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("10.0000", "GBP", "10.00"),
        ("-3.0000", "GBP", "-3.00"),
        ("1200.0000", "JPY", "1200"),
        # Written around the facade: kept as it is, never rounded.
        ("10.1234", "GBP", "10.1234"),
    ],
)
def test_money_has_the_currencys_places_without_rounding(amount, currency, shown):
    built = amounts.money(Decimal(amount), currency)
    assert isinstance(built, Money)
    assert (str(built.amount), built.currency.code) == (shown, currency)


def test_raw_reads_the_stored_amount_without_building_money():
    account = Account(balance=Decimal("4.50"), credit_limit=None)
    assert amounts.raw(account, "balance") == Decimal("4.50")
    assert not isinstance(amounts.raw(account, "balance"), Money)
    assert amounts.raw(account, "credit_limit") is None
