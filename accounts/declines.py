"""
Declined payments: a payment the ledger's rules refused, kept to show why.

With ``ACCOUNTS_RECORD_DECLINES = True``, the facade writes a ``Decline``
for every business refusal of a transfer, a hold, a capture, a request of a
batch or a repayment, then raises the exception as before. Business
refusals are those of :data:`DECLINED`: insufficient funds, a spending
limit, an account that cannot be used now (frozen, closed, expired, not yet
active), a hold that is expired, already resolved or exceeded. Bad input
(a wrong amount, currency or argument, a reused idempotency key) is never
a decline: nothing was asked that could have been paid.

Where it is written: after the operation's own atomic block was rolled back,
on the same connection. Called on its own, the facade writes the decline in
a transaction of its own, committed at once. Inside your ``atomic`` block,
the decline is part of your transaction: if you roll it back (say, because
the payment failed), the decline goes with it. Record what you want kept
outside that block, or catch the exception inside it and let the block
commit.

What it records and where it reads it: the accounts, amount, merchant
reference, user and metadata as the caller gave them (already checked);
the reason (the exception's ``code``) and its figures (``facts``: what was
available, the limit, its period) from the exception, which judged them on
locked rows; the time, the database's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, models, transaction
from django.utils.translation import gettext_lazy as _

from . import amounts
from .clock import database_now
from .conf import conf
from .exceptions import (
    AccountException,
    HoldError,
    InactiveAccount,
    InsufficientFunds,
    SpendingLimitExceeded,
)

logger = logging.getLogger("accounts.declines")

#: The operations a decline records (``Decline.Operation``); ``NOT_RECORDED``:
#: an operation whose refusals are not declines (a reversal).
TRANSFER, HOLD, CAPTURE, BATCH, REPAY = "transfer", "hold", "capture", "batch", "repay"
NOT_RECORDED = ""

#: The refusals that are declines (and their subclasses).
DECLINED: tuple[type[AccountException], ...] = (
    InsufficientFunds,
    SpendingLimitExceeded,
    InactiveAccount,
    HoldError,
)

#: The exception's context kept as the decline's facts (money as decimal text).
FACTS = ("available", "credit_limit", "period", "limit", "used", "end_date", "start_date")

#: A reason in a few words, by code, for a customer's statement.
REASONS = {
    "insufficient_funds": _("not enough money available"),
    "account_inactive": _("account cannot be used"),
    "account_closed": _("account closed"),
    "account_frozen": _("account frozen"),
    "account_expired": _("account expired"),
    "account_not_yet_active": _("account not active yet"),
    "hold_error": _("authorisation cannot be used"),
    "hold_resolved": _("authorisation already used"),
    "hold_expired": _("authorisation expired"),
    "capture_exceeds_hold": _("more than was authorised"),
}
LIMIT_REASONS = {
    "day": _("daily limit reached"),
    "week": _("weekly limit reached"),
    "month": _("monthly limit reached"),
}


def is_decline(exc: BaseException) -> bool:
    """Whether ``exc`` is a business refusal (a decline), not bad input."""
    return isinstance(exc, DECLINED)


def reason_text(reason: str, facts: dict[str, Any]) -> str:
    """A decline's reason in a few words: "daily limit reached", "account frozen"."""
    if reason == "spending_limit_reached":
        return str(LIMIT_REASONS.get(facts.get("period", ""), _("spending limit reached")))
    return str(REASONS.get(reason, reason.replace("_", " ")))


def facts_of(exc: AccountException) -> dict[str, Any]:
    """The figures of a refusal, as JSON values."""
    found: dict[str, Any] = {}
    for name in FACTS:
        value = exc.context.get(name)
        if value is None:
            continue
        if isinstance(value, amounts.MONEY_TYPES):
            value = format(value.amount, "f")
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        found[name] = str(value)
    return found


@contextmanager
def recorded(using: str, operation: str, **request: Any) -> Iterator[None]:
    """Run a facade operation; when its rules refuse it, record a ``Decline`` and re-raise.

    ``request``: what the caller asked (``source``, ``destination`` and
    ``hold`` ids, ``amount``, ``currency``, ``merchant_reference``,
    ``description``, ``user``, ``idempotency_key``, ``metadata``).
    """
    try:
        yield
    except DECLINED as exc:
        if conf.RECORD_DECLINES and operation != NOT_RECORDED:
            write(using, [(operation, exc, request)])
        raise


def write(using: str, declines: list[tuple[str, AccountException, dict[str, Any]]]) -> None:
    """Write declines (one statement for all), at the database's time.

    A failure to write one is logged and never hides the refusal itself.
    """
    from .models import Decline, Hold

    if not declines:
        return
    try:
        with transaction.atomic(using=using):
            now = database_now(using)
            rows = []
            for operation, exc, request in declines:
                source, destination = request.get("source"), request.get("destination")
                hold = request.get("hold")
                if hold is not None and source is None:
                    source, destination = (
                        Hold.objects.using(using)
                        .filter(pk=hold)
                        .values_list("source_id", "destination_id")
                        .get()
                    )
                assert source is not None
                user = request.get("user")
                currency = request.get("currency") or _currency(exc, using, source)
                rows.append(
                    Decline(
                        operation=operation,
                        source_id=source,
                        destination_id=destination,
                        hold_id=hold,
                        currency=currency,
                        amount=request.get("amount"),
                        reason=exc.code,
                        message=str(exc),
                        facts=facts_of(exc),
                        merchant_reference=request.get("merchant_reference"),
                        description=request.get("description") or "",
                        user=user,
                        username=user.get_username() if user is not None else "",
                        idempotency_key=request.get("idempotency_key") or "",
                        metadata=request.get("metadata") or {},
                        created=now,
                    )
                )
            # The plain QuerySet's: Decline's own refuses writes from elsewhere.
            models.QuerySet.bulk_create(Decline.objects.using(using), rows)
    except DatabaseError:
        logger.exception("Could not record %d declined payment(s)", len(declines))


def _currency(exc: AccountException, using: str, source: int | None) -> str:
    """The declined payment's currency: its account's."""
    account = getattr(exc, "account", None)
    currency = getattr(account, "currency", None)
    if currency:
        return str(currency)
    from .models import Account

    found = Account.objects.using(using).filter(pk=source).values_list("currency", flat=True)
    return str(found.get())
