"""
Refusals: what the locked rows do not allow. The account cannot be used now
(``InactiveAccount`` and its subclasses), cannot cover the debit
(``InsufficientFunds``, ``SpendingLimitExceeded``), the transfer or hold cannot
be reversed, captured or released as asked (``InvalidReversal``, ``HoldError``
and its subclasses), the account cannot be closed or changed
(``AccountNotEmpty``, ``ProtectedAccount``), or a ledger row cannot be written
that way (``LedgerImmutable``).

Part of the one tree in :mod:`accounts.exceptions`; import them from there.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from .exception_base import AccountException, StrOrPromise, customer_account, customer_date

if TYPE_CHECKING:
    from djmoney.money import Money

    from .models import Account, Hold, Transfer


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


class LedgerImmutable(AccountException):
    """Ledger rows and balances are written only by the facade and never changed."""

    code = "ledger_immutable"

    user_template = _("This record cannot be changed.")
