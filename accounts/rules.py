"""
The ledger's rules, each written once, judged on locked rows at the database's time.

Every function here takes what the locked path read (``accounts.posting``)
and raises the rule's exception, or returns what the rule decides. None of
them reads the database or a clock: the operations pass in the rows, the
time and any total they need, read under the locks.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from . import amounts, limits
from .conf import conf
from .exceptions import (
    AccountExpired,
    AccountNotEmpty,
    AccountNotYetActive,
    CaptureExceedsHold,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    HoldExpired,
    HoldResolved,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
    ProtectedAccount,
)

if TYPE_CHECKING:
    from .limits import Limits
    from .models import Account, Hold, Transfer

OPEN, FROZEN, CLOSED = "open", "frozen", "closed"


#: What a refusal of a transfer's amount calls it.
_THE_AMOUNT = _("The amount")


def check_pair(
    src: Account, dst: Account, currency: str | None, now: datetime, *, skip_window: bool = False
) -> None:
    """Both accounts share a currency (the amount's, if it has one) and can be used now.

    ``skip_window`` lets the expiry sweep take money out of an account past
    its end date; nothing else sets it.
    """
    if src.currency != dst.currency:
        raise CurrencyMismatch(
            _("Cannot transfer from %(source)s (%(scur)s) to %(destination)s (%(dcur)s)."),
            source=src,
            scur=src.currency,
            destination=dst,
            dcur=dst.currency,
        )
    if currency is not None:
        amounts.check_same_currency(currency, src.currency, what=_THE_AMOUNT)
    check_usable(src, now, skip_window=skip_window)
    check_usable(dst, now, skip_window=False)


def check_usable(account: Account, now: datetime, *, skip_window: bool = False) -> None:
    """The account is open and ``now`` is inside its dates (unless ``skip_window``)."""
    if account.status == CLOSED:
        raise ClosedAccount(account=account)
    if account.status == FROZEN:
        raise FrozenAccount(account=account)
    if skip_window:
        return
    if account.start_date and now < account.start_date:
        raise AccountNotYetActive(account=account, start_date=account.start_date)
    if account.end_date and now > account.end_date:
        raise AccountExpired(account=account, end_date=account.end_date)


def check_funds(src: Account, value: Decimal, *, allow_partial: bool = False) -> Decimal:
    """Return the amount to debit: ``value``, or with ``allow_partial`` what is available.

    ``balance − held ≥ −credit_limit`` after the debit; holds past their
    expiry must already be out of ``held`` (``accounts.posting.lapse_holds``).
    Raises ``InsufficientFunds`` when the source cannot cover it.
    """
    limit = amounts.raw(src, "credit_limit")
    if limit is None:
        return value
    available = _raw(src, "balance") + limit - _raw(src, "held")
    if value <= available:
        return value
    if allow_partial and available > 0:
        return available
    raise InsufficientFunds(
        account=src,
        amount=amounts.money(value, src.currency),
        available=amounts.money(max(available, Decimal(0)), src.currency),
    )


def decide_transfer(
    src: Account,
    dst: Account,
    value: Decimal | None,
    currency: str | None,
    now: datetime,
    *,
    allow_partial: bool = False,
    parent: Transfer | None = None,
    reversed_total: Decimal = Decimal(0),
    spending_limits: Limits | None = None,
) -> Decimal:
    """Every rule of a transfer, in order, on locked rows; return the amount to move.

    ``src``'s ``held`` must already leave out holds past their expiry (and
    its spending usage what they had counted). ``spending_limits`` are the
    source's, read with its lock: a plain transfer that counts as spending
    (``accounts.limits.counts``) stays within them.
    ``value=None`` (reversals only) moves what is left of ``parent``. The
    one sequence of rules for a transfer: the generic locked path runs it
    before writing, and PostgreSQL's one-statement transfer
    (``accounts.pg_transfer``) runs it to explain a refusal.
    """
    check_pair(src, dst, currency, now)
    if parent is not None:
        value = check_reversal(parent, reversed_total, value)
    assert value is not None
    amounts.check_places(value, src.currency)
    value = check_funds(src, value, allow_partial=allow_partial)
    if parent is None and spending_limits and limits.counts(src, dst):
        value = limits.check(src, spending_limits, value, now, allow_partial=allow_partial)
    if src.role == "source":
        # Money from the source: a top-up, or a withdrawal reversed.
        check_initial_value(dst, value, top_up=parent is None)
    check_storable(_raw(src, "balance") - value, value)
    check_storable(_raw(dst, "balance") + value, value)
    return value


def check_reversal_shape(parent: Transfer, source_id: int, destination_id: int) -> None:
    """Refuse what can never be a reversal; these facts of a transfer never change."""
    if parent.parent_id is not None:
        raise InvalidReversal(
            _("Transfer %(transfer)s is itself a reversal and cannot be reversed."),
            transfer=parent,
        )
    if (parent.source_id, parent.destination_id) != (destination_id, source_id):
        raise InvalidReversal(
            _(
                "A reversal of transfer %(transfer)s must move money from its destination "
                "back to its source."
            ),
            transfer=parent,
        )


def check_reversal(parent: Transfer, reversed_total: Decimal, value: Decimal | None) -> Decimal:
    """Return the amount a reversal moves: ``value``, or all that is left for ``None``.

    ``reversed_total`` is what earlier reversals moved, read under the locks.
    """
    remaining = _raw(parent, "amount") - reversed_total
    if remaining <= 0:
        raise InvalidReversal(
            _("Transfer %(transfer)s has already been fully reversed."), transfer=parent
        )
    if value is None:
        return remaining
    if value > remaining:
        raise InvalidReversal(
            _(
                "Cannot reverse %(amount)s of transfer %(transfer)s: only %(remaining)s "
                "is left to reverse."
            ),
            transfer=parent,
            amount=amounts.money(value, parent.currency),
            remaining=amounts.money(remaining, parent.currency),
        )
    return value


def check_initial_value(destination: Account, value: Decimal, *, top_up: bool = True) -> None:
    """A credit from the source account: the top-up limits.

    The minimum applies to top-ups only; the maximum balance to any credit
    from the source (a reversed withdrawal too).
    """
    minimum, maximum = conf.MIN_INITIAL_VALUE, conf.MAX_INITIAL_VALUE
    new_balance = _raw(destination, "balance") + value
    if top_up and minimum is not None and value < minimum:
        raise InvalidAmount(
            _("A top-up must be at least %(minimum)s (got %(amount)s)."),
            minimum=amounts.money(minimum, destination.currency),
            amount=amounts.money(value, destination.currency),
        )
    if maximum is not None and new_balance > maximum:
        raise InvalidAmount(
            _(
                "A top-up of %(amount)s would bring account %(account)s to %(balance)s, "
                "above the maximum of %(maximum)s."
            ),
            amount=amounts.money(value, destination.currency),
            account=destination,
            balance=amounts.money(new_balance, destination.currency),
            maximum=amounts.money(maximum, destination.currency),
        )


def check_storable(total: Decimal, value: Decimal | None = None) -> None:
    """Refuse a balance or held amount the ledger cannot store exactly on every backend."""
    if abs(total) >= amounts.LIMIT:
        raise InvalidAmount(
            _("Amount %(amount)s would take a balance beyond what the ledger stores."),
            amount=value if value is not None else total,
        )


def check_capturable(
    hold: Hold, value: Decimal | None, currency: str | None, now: datetime
) -> Decimal:
    """A locked hold can be captured now for ``value`` (``None``: all); return the amount."""
    if hold.status != "active":
        raise HoldResolved(hold=hold, status=hold.get_status_display().lower())
    if hold.expires_at is not None and hold.expires_at <= now:
        raise HoldExpired(hold=hold, expires_at=hold.expires_at)
    amounts.check_same_currency(currency, hold.currency, what=_("The amount"))
    held = _raw(hold, "amount")
    value = held if value is None else value
    amounts.check_places(value, hold.currency)
    if value > held:
        raise CaptureExceedsHold(
            hold=hold, amount=amounts.money(value, hold.currency), held=hold.amount
        )
    return value


def check_active(hold: Hold) -> None:
    """The hold has not been captured, released or expired yet."""
    if hold.status != "active":
        raise HoldResolved(hold=hold, status=hold.get_status_display().lower())


def check_status_change(account: Account, status: str) -> bool:
    """Whether a locked account may move to ``status``; ``False``: it is there already.

    Core accounts never change (``ProtectedAccount``); a closed account
    stays closed (``ClosedAccount``); closing needs a zero balance and no
    active holds (``AccountNotEmpty``).
    """
    if account.role:
        raise ProtectedAccount(account=account, action=account.Status(status).label.lower())
    if account.status == status:
        return False
    if account.status == CLOSED:
        raise ClosedAccount(account=account)
    if status == CLOSED and _raw(account, "balance") != 0:
        raise AccountNotEmpty(account=account, balance=account.balance)
    if status == CLOSED and _raw(account, "held") != 0:
        raise AccountNotEmpty(
            _(
                "Account %(account)s cannot be closed: %(held)s is held by active "
                "holds. Capture or release them first."
            ),
            account=account,
            held=account.held,
        )
    return True


def _raw(row: object, name: str) -> Decimal:
    value = amounts.raw(row, name)
    assert value is not None
    return value
