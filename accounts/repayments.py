"""
Repaying a debt, up to what is owed, on the locked path (``facade.repay``).

What it decides on, and where it reads it (the trust boundary):

* the debt: minus the destination's balance when it is below zero, on its
  locked row, at the moment the repayment is written;
* both accounts' status, dates, currency, and the source's balance, held
  amount, credit limit and spending limits: their locked rows (and the
  limits read with the lock), judged by the rules of a transfer;
* a repeated idempotency key: the stored ``Repayment`` and its request
  fingerprint; its outcome (a transfer, or none when there was no debt) is
  the answer, whatever the debt is now.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, limits, posting, rules, sql
from .idempotency import Request, after_race
from .models import Transfer
from .wallet_models import Repayment


def repay(using: str, request: Request, order: posting.Order) -> Transfer | None:
    """Move ``min(value, debt)`` to the destination; ``None`` when it owes nothing."""
    source_id, destination_id = order.accounts
    value = order.amount
    try:
        with posting.locked(using, order.accounts, limits=True) as lock:
            src, dst = lock.pair(order)
            existing = request.find(Repayment, using)
            if existing is not None:
                return request.replay(existing, legacy_match=False).transfer
            # Bad input first, whatever the debt.
            if src.currency != dst.currency:
                rules.check_pair(src, dst, order.currency, lock.now)
            amounts.check_same_currency(order.currency, dst.currency, what=_("The amount"))
            amounts.check_places(value, dst.currency)
            arguments.check_effective_at(order.effective_at, lock.now)
            debt = max(-posting.amount(dst, "balance"), Decimal(0))
            posted = None
            if debt:
                spending_limits = lock.limits.get(source_id)
                if posting.credit_limit(src) is not None or spending_limits:
                    posting.lapse_holds(using, src, lock.now, past_expiry=True)
                moved = rules.decide_transfer(
                    src, dst, min(value, debt), None, lock.now, spending_limits=spending_limits
                )
                if limits.counts(src, dst):
                    limits.spend(src, moved, lock.now)
                posted = posting.write_transfer(
                    using,
                    src,
                    dst,
                    moved,
                    lock.now,
                    user=order.user,
                    merchant_reference=order.merchant_reference,
                    description=order.description,
                    source_columns={"held": posting.amount(src, "held")},
                    metadata=order.metadata,
                    effective_at=order.effective_at,
                )
            if posted is not None or request.key is not None:
                # Without a key and a debt there is nothing to remember.
                sql.insert(
                    using,
                    Repayment(
                        source_id=source_id,
                        destination_id=destination_id,
                        currency=dst.currency,
                        requested=value,
                        debt=debt,
                        transfer=posted,
                        **posting.recorded(request, order.user, lock.now),
                    ),
                )
    except IntegrityError as error:
        existing = after_race(Repayment, using, request.key, error)
        return request.replay(existing, legacy_match=False).transfer
    posting.update_instances(lock.rows, *order.instances)
    return posted
