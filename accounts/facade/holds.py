"""
Holds: reserve money, then capture it, release it, or let it expire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import router
from django.utils.translation import gettext_lazy as _

from .. import arguments, declines, holds
from ..models import Account, Hold, Transfer
from ..retry import retry_on_conflict
from ._calls import Amount, Caller, Movement, amount_or_rest, metadata_or_original


@retry_on_conflict
def hold(
    source: Account | int,
    destination: Account | int,
    amount: Amount,
    *,
    expires_at: datetime | None = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    user: Any = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Hold:
    """Reserve ``amount`` on ``source`` for a later capture to ``destination``.

    The source's balance does not change, but the amount available to every
    other debit (transfers and new holds) drops at once. From
    ``expires_at`` (an aware datetime, later than the database's clock;
    ``None``: never) the hold no longer reserves anything and cannot be
    captured. With an ``idempotency_key``, repeating exactly the same call
    returns the original hold. ``metadata`` and ``effective_at`` (when the
    card was authorised, default the posting time, never later) are the
    hold's, as for :func:`transfer`.

    Raises the same errors as :func:`transfer` (``InsufficientFunds`` when the
    source cannot cover it), and ``InvalidArgument`` for an ``expires_at``
    that is not an aware datetime in the future.
    """
    move = Movement.parse(source, destination, amount, metadata, effective_at, expires_at)
    caller = Caller(merchant_reference, description, idempotency_key, user)
    request = move.request("hold", caller, expires_at=move.expires_at)
    using = router.db_for_write(Hold)
    with move.declined(using, declines.HOLD, caller):
        return holds.place(using, request, move.order(caller), expires_at=move.expires_at)


@retry_on_conflict
def capture(
    hold: Hold,
    amount: Amount | None = None,
    *,
    user: Any = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Transfer:
    """Turn an active hold into a transfer of ``amount`` (default: all of it).

    Capturing less than the hold is a partial capture: the remainder is
    released at once. The capture never fails for lack of funds (the hold
    reserved them), but both accounts must still be usable (not closed,
    frozen or outside their dates). The transfer carries the hold's
    merchant reference, and its ``metadata`` unless given one. Its
    ``effective_at`` is its own (default: the capture's posting time, never
    later), not the hold's. With an ``idempotency_key``, repeating exactly the
    same capture returns the same transfer. Only the primary key of
    ``hold`` is used; its amount, accounts, status and expiry are read from
    its locked row, and the instance gets its resolution.

    Raises ``HoldResolved`` (already captured, released or expired),
    ``HoldExpired`` (past ``expires_at``), ``CaptureExceedsHold``,
    ``InvalidAmount``, ``CurrencyMismatch``, ``InactiveAccount`` subclasses
    and ``IdempotencyConflict``.
    """
    hold_id = arguments.saved_pk(hold, Hold, _("hold"))
    value, currency = amount_or_rest(amount)
    caller = Caller(None, description, idempotency_key, user)
    given = metadata_or_original(metadata)
    effective_at = arguments.effective_at(effective_at)
    request = caller.request(
        "capture",
        given,
        effective_at,
        inherits=True,
        hold=hold_id,
        amount=value,
        currency=currency,
    )
    using = router.db_for_write(Hold)
    with caller.declined(
        using, declines.CAPTURE, given or {}, hold=hold_id, amount=value, currency=currency
    ):
        captured, locked = holds.capture(
            using,
            request,
            hold_id,
            value=value,
            currency=currency,
            user=caller.user,
            description=caller.description,
            # None: the hold's (read under the lock).
            metadata=given,
            effective_at=effective_at,
        )
    _copy_resolution(locked, hold)
    return captured


@retry_on_conflict
def release(hold: Hold, *, user: Any = None) -> Hold:
    """Free the money an active hold reserves, without moving any.

    A hold past its expiry that nothing has marked expired yet can still be
    released. Only the primary key of ``hold`` is used; the instance gets
    its resolution. Raises ``HoldResolved`` if the hold was already
    captured, released or expired.
    """
    hold_id = arguments.saved_pk(hold, Hold, _("hold"))
    locked = holds.release(router.db_for_write(Hold), hold_id, user=arguments.saved_user(user))
    _copy_resolution(locked, hold)
    return hold


@retry_on_conflict
def expire_hold(hold: Hold, *, now: datetime | None = None) -> bool:
    """Mark one hold past its expiry as expired and free what it reserved.

    Expiry is judged at ``now``, but never later than the database's clock
    under the lock: a cut-off in the future cannot expire a hold that is
    not due. Returns False (and changes nothing) if the hold is no longer
    active or not yet past its expiry when checked under the lock, so two
    sweeps running at once expire each hold once. Used by
    ``accounts.expiry.release_expired_holds``.
    """
    hold_id = arguments.saved_pk(hold, Hold, _("hold"))
    locked = holds.expire(router.db_for_write(Hold), hold_id, cutoff=now)
    if locked is None:
        return False
    _copy_resolution(locked, hold)
    return True


def _copy_resolution(locked: Hold, hold: Hold) -> None:
    """Give the instance passed in the resolution its locked row has now."""
    for name in ("status", "resolved_at", "resolved_by", "capture_id"):
        setattr(hold, name, getattr(locked, name))
