"""
Money amounts: the one place that validates them.

Amounts are ``Decimal`` or ``Money`` and nothing else: a ``float`` cannot
hold 0.10 exactly, a string hides its type errors until later, and a
``bool`` is an ``int`` by accident. Nothing here rounds: an amount with more
decimal places than its currency has is refused, not quantized.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache
from typing import cast

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from moneyed import Money as BaseMoney
from moneyed import get_currency
from moneyed.classes import CurrencyDoesNotExist

from .conf import conf
from .exceptions import CurrencyMismatch, InvalidAmount, UnsupportedCurrency

#: Column size of every money column in the ledger.
MAX_DIGITS = 19
DECIMAL_PLACES = 4
#: Significant digits every backend stores exactly. SQLite keeps a decimal
#: column as a floating-point number (REAL), which holds 15 significant
#: digits: 12345678901234.56 would come back as 12345678901234.6.
EXACT_DIGITS = 15
#: Exclusive bound on the absolute value of any amount, balance, held amount
#: or credit limit: 99,999,999,999.9999 is the largest, stored exactly by
#: every backend (11 digits before the point, the columns' 4 after). The
#: same bound applies everywhere, so an amount behaves the same on SQLite,
#: PostgreSQL and MariaDB.
LIMIT = Decimal(10) ** (EXACT_DIGITS - DECIMAL_PLACES)

MONEY_TYPES = (BaseMoney,)


@cache
def _step(places: int) -> Decimal:
    """The smallest unit with ``places`` decimal places (2: ``Decimal("0.01")``)."""
    return Decimal(1).scaleb(-places)


@cache
def currency_places(code: str) -> int:
    """Return the number of decimal places of a currency's minor unit (GBP: 2, JPY: 0).

    Raises ``UnsupportedCurrency`` for a code ISO 4217 does not define.
    """
    try:
        sub_unit = get_currency(code).sub_unit
    except (CurrencyDoesNotExist, TypeError, AttributeError):
        raise UnsupportedCurrency(
            _("Unknown currency code %(currency)r."), currency=code
        ) from None
    return len(str(sub_unit - 1)) if sub_unit and sub_unit > 1 else 0


def is_known_currency(code: object) -> bool:
    """Whether ``code`` is an ISO 4217 currency code known to py-moneyed."""
    if not isinstance(code, str):
        return False
    try:
        currency_places(code)
    except UnsupportedCurrency:
        return False
    return True


def check_currency(code: object) -> str:
    """Return ``code`` if accounts may use it, else raise ``UnsupportedCurrency``."""
    currencies = conf.CURRENCIES
    if not isinstance(code, str) or code not in currencies:
        raise UnsupportedCurrency(currency=code, currencies=", ".join(currencies))
    currency_places(code)
    return code


def money(amount: Decimal, currency: str) -> Money:
    """Build a ``Money`` with the currency's own number of decimal places.

    Columns store four decimal places; ``Decimal("10.0000")`` from the
    database becomes ``Decimal("10.00")`` in GBP. An amount that does not fit
    the currency exactly (only possible when rows were written around the
    facade) is kept as it is rather than rounded.
    """
    places = currency_places(currency)
    exponent = Decimal(1).scaleb(-places)
    if amount.is_finite() and amount.as_tuple().exponent != -places:
        try:
            exact = amount.quantize(exponent)
        except InvalidOperation:
            exact = amount
        if exact == amount:
            amount = exact
    return Money(amount, currency, decimal_places=places)


def parse_amount(value: object) -> tuple[Decimal, str | None]:
    """Check a positive amount given as ``Money`` or ``Decimal``.

    Returns the amount and the currency code it carried (``None`` for a plain
    ``Decimal``, which means "the accounts' currency"). The number of decimal
    places is checked later by :func:`check_places`, once the currency is known.

    Raises ``InvalidAmount`` for any other type (``float``, ``int``, ``str``,
    ``None``), for NaN and infinities, for zero and negative amounts and for
    amounts too large for the ledger's columns.
    """
    amount: object
    currency: str | None
    if isinstance(value, MONEY_TYPES):
        amount, currency = value.amount, value.currency.code
    elif isinstance(value, Decimal):
        amount, currency = value, None
    else:
        raise InvalidAmount(
            _(
                "Amount %(amount)r has type %(type)s; give a Decimal (for example "
                "Decimal('10.00')) or a Money."
            ),
            amount=value,
            type=type(value).__name__,
        )
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount(_("Amount %(amount)r is not a finite number."), amount=value)
    if amount <= 0:
        raise InvalidAmount(_("Amount %(amount)s must be greater than zero."), amount=value)
    if amount >= LIMIT:
        raise InvalidAmount(
            _("Amount %(amount)s is too large: amounts must be below %(limit)s."),
            amount=value,
            limit=LIMIT,
        )
    return amount, currency


def check_places(amount: Decimal, currency: str, *, what: str | Promise | None = None) -> None:
    """Refuse an amount with more decimal places than ``currency`` has.

    ``Decimal("10.50")`` and ``Decimal("10.500")`` are both fine in GBP;
    ``Decimal("10.505")`` is not, and is never rounded.
    """
    places = currency_places(currency)
    try:
        exact = amount == amount.quantize(_step(places))
    except InvalidOperation:
        exact = False
    if not exact:
        raise InvalidAmount(
            _(
                "%(what)s %(amount)s has more decimal places than %(currency)s "
                "allows (%(places)s)."
            ),
            what=what or _("Amount"),
            amount=amount,
            currency=currency,
            places=places,
        )


def check_same_currency(currency: str | None, expected: str, *, what: str | Promise) -> None:
    """Refuse a Money whose currency is not ``expected`` (``None`` means a plain Decimal)."""
    if currency is not None and currency != expected:
        raise CurrencyMismatch(
            _("%(what)s is in %(currency)s but the account uses %(expected)s."),
            what=what,
            currency=currency,
            expected=expected,
        )


def raw(instance: object, name: str) -> Decimal | None:
    """The stored amount of a money field, without building a ``Money`` for it."""
    value = instance.__dict__[name]
    if type(value) is Decimal:  # a locked row's, as read
        return value
    return cast(Decimal | None, value.amount if isinstance(value, MONEY_TYPES) else value)
