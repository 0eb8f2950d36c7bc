"""
The exceptions the accounts app raises on purpose, in one tree.

Every one of them subclasses :class:`AccountException`, so a view can catch
that one class and show ``str(exc)`` to a person. Each carries the context it
was raised with as attributes (``account``, ``amount``, ``available``, ...),
and none is raised after anything was written: an operation that raises has
changed nothing.

::

    AccountException
    ├── InvalidArgument          bad input, refused before any lock is taken
    │   ├── InvalidAmount
    │   ├── InvalidAccount
    │   ├── SameAccount
    │   └── UnsupportedCurrency
    ├── CurrencyMismatch
    ├── InactiveAccount          the account cannot be used now
    │   ├── ClosedAccount
    │   ├── FrozenAccount
    │   ├── AccountExpired
    │   └── AccountNotYetActive
    ├── InsufficientFunds
    ├── IdempotencyConflict
    ├── InvalidReversal
    ├── HoldError
    │   ├── HoldResolved         already captured, released or expired
    │   ├── HoldExpired          past its expiry: it can no longer be captured
    │   └── CaptureExceedsHold
    ├── AccountNotEmpty
    ├── ProtectedAccount
    ├── CodeGenerationError      no unused gift card code found (accounts.codes)
    ├── CodeLookupBlocked        too many failed code lookups (accounts.lookup)
    ├── RetryableConflict        the database aborted it for a concurrent change (accounts.retry)
    └── LedgerImmutable
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.translation import gettext_lazy as _


class AccountException(Exception):
    """Base class of every error the accounts app raises on purpose."""

    message: Any = _("The accounts ledger refused the operation.")

    def __init__(self, message: Any = None, **context: Any) -> None:
        for key, value in context.items():
            setattr(self, key, value)
        self.context = context
        text = self.message if message is None else message
        if context:
            text = text % context
        super().__init__(str(text))


class InvalidArgument(AccountException):
    """An argument has the wrong type or value; nothing was looked at or written."""


class InvalidAmount(InvalidArgument):
    """The amount is not a positive, finite Money/Decimal the currency can hold exactly."""

    message = _("Invalid amount %(amount)r.")


class InvalidAccount(InvalidArgument):
    """The object given as an account is not a saved, existing account."""

    message = _("%(account)r is not a saved account.")


class SameAccount(InvalidArgument):
    """Source and destination of a transfer are the same account."""

    message = _("Cannot transfer from account %(account)s to itself.")


class UnsupportedCurrency(InvalidArgument):
    """The currency is unknown or not listed in ACCOUNTS_CURRENCIES."""

    message = _("Currency %(currency)r is not one of ACCOUNTS_CURRENCIES (%(currencies)s).")


class CurrencyMismatch(AccountException):
    """Two amounts or accounts that must share a currency do not."""


class InactiveAccount(AccountException):
    """The account cannot send or receive money now (closed, frozen or out of its dates)."""

    message = _("Account %(account)s cannot be used now.")


class ClosedAccount(InactiveAccount):
    """The account is closed."""

    message = _("Account %(account)s is closed.")


class FrozenAccount(InactiveAccount):
    """The account is frozen by staff."""

    message = _("Account %(account)s is frozen.")


class AccountExpired(InactiveAccount):
    """The account's end date has passed."""

    message = _("Account %(account)s expired on %(end_date)s.")


class AccountNotYetActive(InactiveAccount):
    """The account's start date has not been reached yet."""

    message = _("Account %(account)s cannot be used before %(start_date)s.")


class InsufficientFunds(AccountException):
    """The source account cannot cover the debit within its credit limit."""

    message = _(
        "Account %(account)s cannot be debited %(amount)s: only %(available)s is available."
    )


class IdempotencyConflict(AccountException):
    """An idempotency key was reused with different transfer details."""

    message = _(
        "Idempotency key %(key)r was already used, by %(existing)s, with different "
        "details; use a new key for a new operation."
    )


class InvalidReversal(AccountException):
    """The transfer cannot be reversed (by that amount)."""


class HoldError(AccountException):
    """A hold cannot be captured or released as asked."""


class HoldResolved(HoldError):
    """The hold was already captured, released or expired: a hold resolves exactly once."""

    message = _("Hold %(hold)s is already %(status)s; a hold can be resolved only once.")


class HoldExpired(HoldError):
    """The hold is past its expiry: it reserves nothing and can no longer be captured."""

    message = _("Hold %(hold)s expired at %(expires_at)s and can no longer be captured.")


class CaptureExceedsHold(HoldError):
    """The amount to capture is more than the hold reserves."""

    message = _("Cannot capture %(amount)s: hold %(hold)s reserves only %(held)s.")


class AccountNotEmpty(AccountException):
    """The account cannot be closed while money is on it."""

    message = _(
        "Account %(account)s cannot be closed: its balance is %(balance)s, not zero. "
        "Move the money off it first."
    )


class ProtectedAccount(AccountException):
    """Core accounts (source, sales, expired) cannot be frozen or closed."""

    message = _("Account %(account)s is a core account and cannot be %(action)s.")


class CodeGenerationError(AccountException):
    """No unused code was found in ``attempts`` tries (the random source is suspect)."""

    message = _(
        "Could not generate an unused code in %(attempts)s attempts; "
        "check the random number source."
    )


class CodeLookupBlocked(AccountException):
    """The client address failed too many code lookups in a row; ``retry_after`` is in seconds."""

    message = _(
        "Too many codes that match no gift card were tried from your network. "
        "For your security, code lookups are paused: try again in %(minutes)s minute(s)."
    )

    retry_after: int

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after, minutes=max(1, math.ceil(retry_after / 60)))


class RetryableConflict(AccountException):
    """The database aborted the operation because a concurrent transaction changed the same rows.

    Nothing of it was committed, and running it again is safe. ``attempts``
    is how many times it was tried; ``in_transaction`` is True when it ran
    inside the caller's transaction, which is then marked for rollback: run
    the whole transaction again. ``error`` is the database's own error.
    Raised by ``accounts.retry.retry_on_conflict`` (every facade operation).
    """

    message = _(
        "The database aborted %(operation)s because concurrent transactions changed the "
        "same rows (%(attempts)s attempts); nothing was written. Try again."
    )
    in_transaction_message = _(
        "The database aborted %(operation)s because a concurrent transaction changed the "
        "same rows; nothing in this transaction can be committed. Roll it back and run the "
        "whole transaction again."
    )

    operation: str
    attempts: int
    in_transaction: bool
    error: Exception


class LedgerImmutable(AccountException):
    """Ledger rows and balances are written only by the facade and never changed."""
