"""
Holds on the locked path: place, capture, release and expire one.

What these decide on, and where they read it (the trust boundary):

* the accounts' status, dates, currency, balance, held amount and credit
  limit: their locked rows;
* a hold's accounts: its row, read by primary key before they are locked
  (a hold's accounts never change); its amount, status and expiry: its row,
  locked after its accounts;
* the time: the database's clock, read with the locks; a sweep's cut-off is
  never later than it;
* the source's spending limits: read in the statement that locks it; what
  it spent in the current periods: its locked row; when a hold counted:
  its stored ``created``;
* a repeated idempotency key: the stored row and its request fingerprint.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, limits, posting, rules
from .exceptions import InvalidArgument
from .idempotency import Request, after_race
from .models import Account, Hold, Transfer


def accounts_of(using: str, hold_id: int) -> tuple[int, int]:
    """A hold's source and destination, read from the database (they never change)."""
    found: tuple[int, int] | None = (
        Hold.objects.using(using)
        .filter(pk=hold_id)
        .values_list("source_id", "destination_id")
        .first()
    )
    if found is None:
        raise InvalidArgument(_("Hold %(hold)s does not exist."), hold=hold_id)
    return found


def place(
    using: str, request: Request, order: posting.Order, *, expires_at: datetime | None
) -> Hold:
    """Reserve the order's value on its source for its destination; see ``facade.hold``."""
    source_id, destination_id = order.accounts
    value = order.amount
    try:
        with posting.locked(using, order.accounts, limits=True) as lock:
            src, dst = lock.pair(order)
            existing = request.find(Hold, using)
            if existing is not None:
                return _replay_hold(request, existing, source_id, destination_id, value)
            if expires_at is not None and expires_at <= lock.now:
                raise InvalidArgument(
                    _(
                        "expires_at %(expires_at)s must be an aware datetime in the future "
                        "(the database's clock says %(now)s)."
                    ),
                    expires_at=expires_at,
                    now=lock.now,
                )
            arguments.check_effective_at(order.effective_at, lock.now)
            rules.check_pair(src, dst, order.currency, lock.now)
            amounts.check_places(value, src.currency)
            spending_limits = lock.limits.get(source_id)
            if posting.credit_limit(src) is not None or spending_limits:
                posting.lapse_holds(using, src, lock.now, past_expiry=True)
            rules.check_funds(src, value)
            if limits.tracked(src):
                # A hold counts against the spending limits when placed.
                limits.check(src, spending_limits or {}, value, lock.now)
                limits.spend(src, value, lock.now)
            if src.role == Account.Role.SOURCE:
                rules.check_initial_value(dst, value)
            placed = Hold(
                source_id=source_id,
                destination_id=destination_id,
                currency=src.currency,
                amount=value,
                expires_at=expires_at,
                merchant_reference=order.merchant_reference,
                description=order.description,
                **posting.recorded(request, order.user, lock.now),
                effective_at=order.effective_at or lock.now,
                metadata=order.metadata,
            )
            posting.write_hold(using, src, placed)
    except IntegrityError as error:
        existing = after_race(Hold, using, request.key, error)
        return _replay_hold(request, existing, source_id, destination_id, value)
    posting.update_instances(lock.rows, *order.instances)
    return placed


def capture(
    using: str,
    request: Request,
    hold_id: int,
    *,
    value: Decimal | None,
    currency: str | None,
    user: Any = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> tuple[Transfer, Hold]:
    """Turn an active hold into a transfer; see ``facade.capture``. Returns it and the hold."""
    source_id, destination_id = accounts_of(using, hold_id)
    try:
        with posting.locked(using, [source_id, destination_id]) as lock:
            locked = posting.locked_holds(using).get(pk=hold_id)
            src, dst = lock.rows[source_id], lock.rows[destination_id]
            existing = request.find(Transfer, using)
            if existing is not None:
                return _replay_capture(request, existing, locked, value), locked
            arguments.check_effective_at(effective_at, lock.now)
            value = rules.check_capturable(locked, value, currency, lock.now)
            rules.check_pair(src, dst, None, lock.now)
            # No funds check: the hold kept this money out of every other
            # debit since it was placed, so balance − held stays within the
            # credit limit when the hold turns into a transfer.
            if src.role == Account.Role.SOURCE:
                rules.check_initial_value(dst, value)
            # The capture does not count again; what it leaves of the hold
            # is given back to the periods the hold counted in.
            left = posting.amount(locked, "amount") - value
            limits.give_back(src, left, locked.created, lock.now)
            captured = posting.write_transfer(
                using,
                src,
                dst,
                value,
                lock.now,
                user=user,
                merchant_reference=locked.merchant_reference,
                description=locked.description if description is None else description,
                key=request.key,
                fingerprint=request.fingerprint(),
                source_columns={
                    "held": posting.amount(src, "held") - posting.amount(locked, "amount")
                },
                # The hold's metadata unless the capture gives its own; its
                # own effective date (default: now), not the hold's.
                metadata=locked.metadata if metadata is None else metadata,
                effective_at=effective_at,
            )
            posting.resolve_holds(
                using, [locked], Hold.Status.CAPTURED, user, lock.now, capture=captured
            )
    except IntegrityError as error:
        existing = after_race(Transfer, using, request.key, error)
        locked = Hold.objects.using(using).get(pk=hold_id)
        return _replay_capture(request, existing, locked, value), locked
    return captured, locked


def release(using: str, hold_id: int, *, user: Any = None) -> Hold:
    """Free what an active hold reserves; see ``facade.release``. Returns the locked hold."""
    source_id, _destination_id = accounts_of(using, hold_id)
    with posting.locked(using, [source_id]) as lock:
        locked = posting.locked_holds(using).get(pk=hold_id)
        rules.check_active(locked)
        posting.free_holds(
            using, lock.rows[source_id], [locked], Hold.Status.RELEASED, user, lock.now
        )
    return locked


def expire(
    using: str, hold_id: int, *, cutoff: datetime | None = None, nowait: bool = False
) -> Hold | None:
    """Expire one hold past its expiry; ``None`` if it is not (any more) to expire.

    Judged at ``cutoff``, but never later than the database's clock.
    """
    source_id, _destination_id = accounts_of(using, hold_id)
    with posting.locked(using, [source_id], nowait=nowait) as lock:
        moment = lock.now if cutoff is None else min(cutoff, lock.now)
        locked = posting.locked_holds(using, nowait=nowait).get(pk=hold_id)
        if (
            locked.status != Hold.Status.ACTIVE
            or locked.expires_at is None
            or locked.expires_at > moment
        ):
            return None
        posting.free_holds(
            using, lock.rows[source_id], [locked], Hold.Status.EXPIRED, None, lock.now
        )
    return locked


def _replay_hold(
    request: Request, existing: Hold, source_id: int, destination_id: int, value: Decimal
) -> Hold:
    legacy = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and posting.amount(existing, "amount") == value
    )
    return request.replay(existing, legacy_match=legacy)


def _replay_capture(
    request: Request, existing: Transfer, locked: Hold, value: Decimal | None
) -> Transfer:
    legacy = locked.capture_id == existing.pk and (
        value is None or posting.amount(existing, "amount") == value
    )
    return request.replay(existing, legacy_match=legacy)
