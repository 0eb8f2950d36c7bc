"""
Bad input: the exceptions raised before any lock is taken, because an argument
has the wrong type or value (``InvalidArgument`` and its subclasses), or two
amounts or accounts are in different currencies (``CurrencyMismatch``).

Part of the one tree in :mod:`accounts.exceptions`; import them from there.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from .exception_base import AccountException


class InvalidArgument(AccountException):
    """An argument has the wrong type or value; nothing was looked at or written."""

    code = "invalid_argument"

    user_template = _("Something in this request is not valid; nothing was done.")


class InvalidAmount(InvalidArgument):
    """The amount is not a positive, finite Money/Decimal the currency can hold exactly."""

    code = "invalid_amount"

    message = _("Invalid amount %(amount)r.")
    user_template = _("This amount is not valid.")

    #: The amount as it was given (any type).
    amount: object


class InvalidAccount(InvalidArgument):
    """The object given as an account is not a saved, existing account."""

    code = "invalid_account"

    message = _("%(account)r is not a saved account.")
    user_template = _("This account does not exist.")

    #: What was given as the account.
    account: object


class SameAccount(InvalidArgument):
    """Source and destination of a transfer are the same account."""

    code = "same_account"

    message = _("Cannot transfer from account %(account)s to itself.")
    user_template = _("Money cannot be moved from an account to itself.")

    #: The account (or its primary key) given as both source and destination.
    account: object


class UnsupportedCurrency(InvalidArgument):
    """The currency is unknown or not listed in ACCOUNTS_CURRENCIES."""

    code = "unsupported_currency"

    message = _("Currency %(currency)r is not one of ACCOUNTS_CURRENCIES (%(currencies)s).")
    user_template = _("This currency is not accepted here.")

    #: The currency code as it was given (any type).
    currency: object


class CurrencyMismatch(AccountException):
    """Two amounts or accounts that must share a currency do not."""

    code = "currency_mismatch"

    user_template = _("These cannot be used together: they are in different currencies.")
