"""
The exceptions the accounts app raises on purpose, in one tree.

Every one of them subclasses :class:`AccountException`, so a view can catch
that one class. Each has two messages and the facts behind them:

* ``str(exc)``: the precise message for developers, logs and staff (account
  codes as stored, exact timestamps, internal references);
* ``exc.user_message``: a short message for customers, translated into the
  active language when read, with dates in the current time zone and
  locale, gift card codes as printed (``7KQ2-M9XD-HT4R-WB3N``) and no
  internal references;
* the facts as typed attributes (``account``, ``amount``, ``available``,
  ``end_date``, ``credit_limit``, ...; see each class), so callers can build
  their own messages.

None is raised after anything was written: an operation that raises has
changed nothing.

::

    AccountException
    ├── InvalidArgument          bad input, refused before any lock is taken
    │   ├── InvalidAmount
    │   ├── InvalidAccount
    │   ├── SameAccount
    │   ├── UnsupportedCurrency
    │   ├── InvalidCollectionPeriod  a run's period or freeze moment is out of order
    │   ├── CollectionBeforeFreeze   a run's collection date is not after its freeze
    │   └── InvalidCollectionSource  the account collected money comes from is unusable
    ├── CurrencyMismatch
    │   └── MixedCurrencyScope   a collection run's accounts are in several currencies
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
    ├── LedgerImmutable
    └── CollectionError          collecting debts (accounts.collections)
        ├── CollectionRunConflict    a run for this scope and period exists, other details
        ├── CollectionRunNotDue      frozen before its freeze moment
        ├── DebtResolved             already settled in full, or failed
        └── SettlementExceedsDebt    more than the debt still owes
"""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING, Any, TypeAlias

from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise
    from djmoney.money import Money

    from .collection_models import CollectionRun, Debt
    from .models import Account, Hold, Transfer


#: A message: text, or lazily translated text (``gettext_lazy``).
StrOrPromise: TypeAlias = "str | _StrPromise"


def customer_account(account: object) -> str:
    """How a customer knows an account: its name, a gift card by its code, or "your account"."""
    from .codes import format_code

    name = getattr(account, "name", None)
    if name:
        return str(name)
    code = getattr(account, "code", None)
    if code:
        return str(_("gift card %(code)s") % {"code": format_code(code)})
    return str(_("your account"))


def customer_date(value: object, format_name: str = "DATE_FORMAT") -> str:
    """A date or datetime in the current time zone and the active locale's format."""
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    if isinstance(value, datetime.date):
        return formats.date_format(value, format_name)
    return "" if value is None else str(value)


class AccountException(Exception):
    """Base class of every error the accounts app raises on purpose.

    ``str(exc)`` is the precise message for developers and staff;
    :attr:`user_message` the short one for customers.
    """

    #: The stable machine code of this refusal (the REST API's, a decline's reason).
    code = "refused"

    message: StrOrPromise = _("The accounts ledger refused the operation.")
    #: What a customer is told (see :attr:`user_message`); subclasses refine it.
    user_template: StrOrPromise = _("Sorry, this could not be done.")
    #: Everything the exception was raised with, also set as attributes.
    context: dict[str, Any]

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        for key, value in context.items():
            setattr(self, key, value)
        self.context = context
        text = self.message if message is None else message
        if context:
            text = text % context
        super().__init__(str(text))

    @property
    def user_message(self) -> str:
        """A short message fit for a customer, in the active language.

        Dates are in the current time zone and the locale's format, gift
        cards are named by their code as printed, and there are no internal
        references (primary keys, transfer references, raw timestamps).
        """
        return capfirst(str(self.get_user_template()) % self.user_facts())

    def get_user_template(self) -> StrOrPromise:
        """The translatable template of :attr:`user_message`."""
        return self.user_template

    def user_facts(self) -> dict[str, str]:
        """The values :meth:`get_user_template` refers to, formatted for a customer."""
        return {}


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


class InactiveAccount(AccountException):
    """The account cannot send or receive money now (closed, frozen or out of its dates)."""

    code = "account_inactive"

    message = _("Account %(account)s cannot be used now.")
    user_template = _("%(account)s cannot be used now.")

    #: The account as read under its lock.
    account: Account

    def user_facts(self) -> dict[str, str]:
        return {"account": customer_account(getattr(self, "account", None))}


class ClosedAccount(InactiveAccount):
    """The account is closed."""

    code = "account_closed"

    message = _("Account %(account)s is closed.")
    user_template = _("%(account)s is closed and can no longer be used.")


class FrozenAccount(InactiveAccount):
    """The account is frozen by staff."""

    code = "account_frozen"

    message = _("Account %(account)s is frozen.")
    user_template = _("%(account)s is frozen and cannot be used for now.")


class AccountExpired(InactiveAccount):
    """The account's end date has passed."""

    code = "account_expired"

    message = _("Account %(account)s expired on %(end_date)s.")
    user_template = _("%(account)s expired on %(date)s.")

    #: The last moment the account could be used.
    end_date: datetime.datetime

    def user_facts(self) -> dict[str, str]:
        return {**super().user_facts(), "date": customer_date(getattr(self, "end_date", None))}


class AccountNotYetActive(InactiveAccount):
    """The account's start date has not been reached yet."""

    code = "account_not_yet_active"

    message = _("Account %(account)s cannot be used before %(start_date)s.")
    user_template = _("%(account)s can be used from %(date)s.")

    #: The first moment the account can be used.
    start_date: datetime.datetime

    def user_facts(self) -> dict[str, str]:
        return {**super().user_facts(), "date": customer_date(getattr(self, "start_date", None))}


class InsufficientFunds(AccountException):
    """The source account cannot cover the debit within its credit limit."""

    code = "insufficient_funds"

    message = _(
        "Account %(account)s cannot be debited %(amount)s: only %(available)s is available."
    )
    user_template = _("%(account)s has only %(available)s available to spend.")
    nothing_template = _("%(account)s has nothing available to spend.")

    #: The account as read under its lock.
    account: Account
    #: The amount asked for.
    amount: Money
    #: What the account could spend at that moment (never negative).
    available: Money
    #: How far the balance may go below zero (``None``: no limit).
    credit_limit: Money | None

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        if "credit_limit" not in context:
            self.credit_limit = getattr(getattr(self, "account", None), "credit_limit", None)

    def get_user_template(self) -> StrOrPromise:
        available = getattr(self, "available", None)
        if available is None or not getattr(available, "amount", available):
            return self.nothing_template
        return self.user_template

    def user_facts(self) -> dict[str, str]:
        return {
            "account": customer_account(getattr(self, "account", None)),
            "available": str(getattr(self, "available", "")),
        }


class SpendingLimitExceeded(AccountException):
    """The debit would take the account past a spending limit (day, week or month).

    Raised for the limit that allows the least at that moment. Nothing was
    written.
    """

    code = "spending_limit_reached"

    message = _(
        "Account %(account)s cannot spend %(amount)s: its %(adjective)s spending limit is "
        "%(limit)s, of which %(used)s is used and %(available)s is left."
    )
    user_template = _("%(account)s can spend only %(available)s more %(when)s.")
    nothing_template = _("%(account)s has reached its %(adjective)s spending limit.")

    #: The account as read under its lock.
    account: Account
    #: The amount asked for.
    amount: Money
    #: ``SpendingLimit.Period``: "day", "week" or "month".
    period: str
    #: The limit of that period.
    limit: Money
    #: What the account spent in the period so far.
    used: Money
    #: What it may still spend in the period (never negative).
    available: Money

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        if "period" in context and "adjective" not in context:
            context["adjective"] = _PERIOD_ADJECTIVES.get(context["period"], context["period"])
        super().__init__(message, **context)

    def get_user_template(self) -> StrOrPromise:
        if not getattr(getattr(self, "available", None), "amount", None):
            return self.nothing_template
        return self.user_template

    def user_facts(self) -> dict[str, str]:
        period = getattr(self, "period", "day")
        when = {"day": _("today"), "week": _("this week"), "month": _("this month")}
        return {
            "account": customer_account(getattr(self, "account", None)),
            "available": str(getattr(self, "available", "")),
            "when": str(when.get(period, "")),
            "adjective": str(_PERIOD_ADJECTIVES.get(period, "")),
        }


_PERIOD_ADJECTIVES = {"day": _("daily"), "week": _("weekly"), "month": _("monthly")}


class IdempotencyConflict(AccountException):
    """An idempotency key was reused with different transfer details."""

    code = "idempotency_conflict"

    message = _(
        "Idempotency key %(key)r was already used, by %(existing)s, with different "
        "details; use a new key for a new operation."
    )
    user_template = _(
        "This was already submitted with different details. Reload the page and try again."
    )

    key: str
    #: The transfer or hold the key already belongs to.
    existing: Transfer | Hold


class InvalidReversal(AccountException):
    """The transfer cannot be reversed (by that amount)."""

    code = "invalid_reversal"

    user_template = _("This payment cannot be refunded.")
    exceeds_template = _("Only %(remaining)s is left to refund.")
    done_template = _("This payment has already been refunded in full.")

    #: The transfer that was to be reversed.
    transfer: Transfer
    #: The amount asked for, when it was more than is left.
    amount: Money | None = None
    #: What is left to reverse, when the amount asked for was more.
    remaining: Money | None = None

    def get_user_template(self) -> StrOrPromise:
        if self.remaining is not None:
            return self.exceeds_template
        transfer = getattr(self, "transfer", None)
        if (
            transfer is not None
            and transfer.parent_id is None
            and not transfer.reversible_amount().amount
        ):
            return self.done_template
        return self.user_template

    def user_facts(self) -> dict[str, str]:
        return {"remaining": str(self.remaining or "")}


class HoldError(AccountException):
    """A hold cannot be captured or released as asked."""

    code = "hold_error"

    user_template = _("This reservation cannot be used any more.")

    hold: Hold


class HoldResolved(HoldError):
    """The hold was already captured, released or expired: a hold resolves exactly once."""

    code = "hold_resolved"

    message = _("Hold %(hold)s is already %(status)s; a hold can be resolved only once.")
    user_template = _("This reservation was already %(status)s.")

    #: The hold's status, in words ("captured", "released", "expired").
    status: str

    def user_facts(self) -> dict[str, str]:
        return {"status": str(getattr(self, "status", ""))}


class HoldExpired(HoldError):
    """The hold is past its expiry: it reserves nothing and can no longer be captured."""

    code = "hold_expired"

    message = _("Hold %(hold)s expired at %(expires_at)s and can no longer be captured.")
    user_template = _("This reservation expired on %(date)s.")

    expires_at: datetime.datetime

    def user_facts(self) -> dict[str, str]:
        return {"date": customer_date(getattr(self, "expires_at", None), "DATETIME_FORMAT")}


class CaptureExceedsHold(HoldError):
    """The amount to capture is more than the hold reserves."""

    code = "capture_exceeds_hold"

    message = _("Cannot capture %(amount)s: hold %(hold)s reserves only %(held)s.")
    user_template = _("Only %(held)s is reserved.")

    amount: Money
    held: Money

    def user_facts(self) -> dict[str, str]:
        return {"held": str(getattr(self, "held", ""))}


class AccountNotEmpty(AccountException):
    """The account cannot be closed while money is on it."""

    code = "account_not_empty"

    message = _(
        "Account %(account)s cannot be closed: its balance is %(balance)s, not zero. "
        "Move the money off it first."
    )
    user_template = _("%(account)s still holds money, so it cannot be closed.")

    account: Account
    #: The balance as read under the lock, when that was the reason.
    balance: Money | None = None
    #: The amount active holds reserve, when that was the reason.
    held: Money | None = None

    def user_facts(self) -> dict[str, str]:
        return {"account": customer_account(getattr(self, "account", None))}


class ProtectedAccount(AccountException):
    """Core accounts (source, sales, expired) cannot be frozen or closed."""

    code = "protected_account"

    message = _("Account %(account)s is a core account and cannot be %(action)s.")
    user_template = _("This account cannot be changed.")

    account: Account
    #: What was refused, in words ("frozen", "closed").
    action: StrOrPromise


class CodeGenerationError(AccountException):
    """No unused code was found in ``attempts`` tries (the random source is suspect)."""

    code = "code_generation_failed"

    message = _(
        "Could not generate an unused code in %(attempts)s attempts; "
        "check the random number source."
    )
    user_template = _("No new gift card code could be made. Please try again.")

    attempts: int


class CodeLookupBlocked(AccountException):
    """The client address failed too many code lookups in a row; ``retry_after`` is in seconds."""

    code = "lookup_blocked"

    message = _(
        "Too many codes that match no gift card were tried from your network. "
        "For your security, code lookups are paused: try again in %(minutes)s minute(s)."
    )

    user_template = message

    #: Seconds until the address may look codes up again.
    retry_after: int
    #: The same, in whole minutes rounded up (at least 1).
    minutes: int

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after, minutes=max(1, math.ceil(retry_after / 60)))

    def user_facts(self) -> dict[str, str]:
        return {"minutes": str(self.minutes)}


class RetryableConflict(AccountException):
    """The database aborted the operation because a concurrent transaction changed the same rows.

    Nothing of it was committed, and running it again is safe. ``attempts``
    is how many times it was tried; ``in_transaction`` is True when it ran
    inside the caller's transaction, which is then marked for rollback: run
    the whole transaction again. ``error`` is the database's own error.
    Raised by ``accounts.retry.retry_on_conflict`` (every facade operation).
    """

    code = "retryable_conflict"

    message = _(
        "The database aborted %(operation)s because concurrent transactions changed the "
        "same rows (%(attempts)s attempts); nothing was written. Try again."
    )
    user_template = _(
        "The ledger was busy with the same accounts; nothing was done. Please try again."
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

    code = "ledger_immutable"

    user_template = _("This record cannot be changed.")


# Collecting debts (accounts.collections) -------------------------------------------


class InvalidCollectionPeriod(InvalidArgument):
    """A collection run's period, or its freeze moment, is out of order."""

    code = "invalid_collection_period"

    message = _("Invalid collection period: %(reason)s")
    user_template = _("The dates of this collection are not valid.")

    #: What is wrong, in words.
    reason: StrOrPromise


class CollectionBeforeFreeze(InvalidArgument):
    """A collection run's collection date does not come after its freeze moment."""

    code = "collection_before_freeze"

    message = _(
        "The collection date %(collect_on)s is not after the freeze at %(freeze_at)s: "
        "money can be collected only once the amounts owed are final."
    )
    user_template = _("The collection date must come after the amounts owed are final.")

    collect_on: datetime.date
    freeze_at: datetime.datetime


class InvalidCollectionSource(InvalidArgument):
    """The account that collected money comes from is missing, or unfit (see the message)."""

    code = "invalid_collection_source"

    message = _("The account collected money comes from is not usable: %(reason)s")
    user_template = _("Collected money cannot be recorded: its account is not set up.")

    #: What is wrong with the account, in words.
    reason: StrOrPromise


class MixedCurrencyScope(CurrencyMismatch):
    """A run's accounts are in several currencies and no currency was chosen."""

    code = "mixed_currency_scope"

    message = _(
        "The accounts of %(scope)s are in several currencies (%(codes)s): create one run "
        "per currency (currency=...)."
    )
    user_template = _("These accounts are in several currencies: collect each one on its own.")

    #: The scope, in words.
    scope: str
    #: The currencies found, sorted.
    currencies: list[str]

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        if "currencies" in context and "codes" not in context:
            context["codes"] = ", ".join(context["currencies"])
        super().__init__(message, **context)


class CollectionError(AccountException):
    """A collection run or a debt cannot be handled as asked."""

    code = "collection_error"

    user_template = _("This collection cannot be handled this way.")


class CollectionRunConflict(CollectionError):
    """A run for the same scope, currency and period exists, created with other details."""

    code = "collection_run_conflict"

    message = _(
        "Collection run %(existing)s already collects %(scope)s in %(currency)s for this "
        "period, with another %(differences)s: a scope is collected once per period."
    )
    user_template = _("A collection for this period already exists, with other details.")

    #: The run that exists.
    existing: CollectionRun
    #: What differs, in words.
    differences: str


class CollectionRunNotDue(CollectionError):
    """A run cannot be frozen before its freeze moment has passed, by the database's clock."""

    code = "collection_run_not_due"

    message = _(
        "Collection run %(run)s cannot be frozen before %(freeze_at)s (the database's "
        "clock says %(now)s)."
    )
    user_template = _("The amounts of this collection are not final before %(date)s.")

    run: CollectionRun
    freeze_at: datetime.datetime
    now: datetime.datetime

    def user_facts(self) -> dict[str, str]:
        return {"date": customer_date(getattr(self, "freeze_at", None), "DATETIME_FORMAT")}


class DebtResolved(CollectionError):
    """The debt was settled in full or failed already: a debt resolves once."""

    code = "debt_resolved"

    message = _("Debt %(debt)s is already %(status)s; it can no longer be settled or failed.")
    user_template = _("This debt was already dealt with.")
    paid_template = _("This debt was already paid in full.")
    failed_template = _("This debt was already marked as not paid.")

    debt: Debt
    #: The debt's status, in words ("succeeded", "failed").
    status: str

    def get_user_template(self) -> StrOrPromise:
        status = getattr(self, "status", None)
        if status == "succeeded":
            return self.paid_template
        if status == "failed":
            return self.failed_template
        return self.user_template


class SettlementExceedsDebt(CollectionError):
    """The amount to settle is more than the debt still owes."""

    code = "settlement_exceeds_debt"

    message = _("Cannot settle %(amount)s on debt %(debt)s: only %(remaining)s is still owed.")
    user_template = _("Only %(remaining)s is still owed.")

    debt: Debt
    #: The amount asked for.
    amount: Money
    #: What the debt still owes (its amount less what was recovered).
    remaining: Money

    def user_facts(self) -> dict[str, str]:
        return {"remaining": str(getattr(self, "remaining", ""))}
