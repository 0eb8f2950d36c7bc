"""
Posting a transfer or a reversal, on the locked path.

What :func:`post` decides on, and where it reads it (the trust boundary):

* both accounts' status, dates, currency, balance, held amount and credit
  limit: their locked rows;
* the time: the database's clock, read with the locks;
* a reversal's original (amount, accounts, currency, parent, merchant
  reference): its row, read by primary key (those columns never change),
  and what was reversed already: the amounts of its reversals, read after
  the locks, so two reversals of one transfer run one after the other;
* the source's spending limits: read in the statement that locks it; what
  it spent in the current periods: its locked row;
* when a reversed debit counted against its source's limits: its stored
  ``created``, or its hold's when it is a capture;
* a given ``effective_at``: compared with the database's clock, read with
  the locks (never later);
* a repeated idempotency key: the stored row and its request fingerprint.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connections
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from . import arguments, limits, pg_transfer, posting, rules
from .exceptions import InvalidArgument
from .idempotency import Request, after_race
from .models import Account, Hold, Transfer


def original(using: str, transfer_id: int) -> Transfer:
    """The transfer to reverse, as stored (the caller's instance is never read).

    With ``hold_placed_at``: when the hold it captured was placed (``None``
    unless it is a capture), read in the same query.
    """
    found: Transfer | None = (
        Transfer.objects.using(using)
        .filter(pk=transfer_id)
        .annotate(hold_placed_at=F("hold__created"))
        .first()
    )
    if found is None:
        raise InvalidArgument(_("Transfer %(parent)s does not exist."), parent=transfer_id)
    return found


def post(
    using: str,
    request: Request,
    order: posting.Order,
    *,
    parent: Transfer | None = None,
    allow_partial: bool = False,
) -> Transfer:
    """Post one transfer, or a reversal of ``parent`` (read from the database).

    ``order.value=None`` is accepted for reversals only: reverse what is left.
    """
    if parent is None and order.value is not None and connections[using].vendor == "postgresql":
        posted = pg_transfer.post(using, request, order, allow_partial=allow_partial)
        if posted is not None:
            return posted
    source_id, destination_id = order.accounts
    try:
        with posting.locked(using, order.accounts, limits=True) as lock:
            src, dst = lock.pair(order)
            existing = request.find(Transfer, using)
            if existing is not None:
                return replay(request, existing, source_id, destination_id, order.value, parent)
            # Bad input, before any rule (as the PostgreSQL statement does).
            arguments.check_effective_at(order.effective_at, lock.now)
            held = posting.amount(src, "held")
            spending_limits = lock.limits.get(source_id)
            if posting.credit_limit(src) is not None or spending_limits:
                # Holds past their expiry stop reserving money, for good.
                posting.lapse_holds(using, src, lock.now, past_expiry=True)
            value = rules.decide_transfer(
                src,
                dst,
                order.value,
                order.currency,
                lock.now,
                allow_partial=allow_partial,
                parent=parent,
                reversed_total=_reversed(using, parent) if parent is not None else Decimal(0),
                spending_limits=spending_limits,
            )
            if parent is None and limits.counts(src, dst):
                limits.spend(src, value, lock.now)
            elif parent is not None:
                placed = hold_placed(using, [parent], lock.now)
                give_back(parent, src, dst, value, lock.now, placed)
            lapsed = posting.amount(src, "held") != held
            posted = posting.write_transfer(
                using,
                src,
                dst,
                value,
                lock.now,
                parent=parent,
                user=order.user,
                merchant_reference=order.merchant_reference,
                description=order.description,
                key=request.key,
                fingerprint=request.fingerprint(),
                source_columns={"held": posting.amount(src, "held")} if lapsed else None,
                metadata=order.metadata,
                effective_at=order.effective_at,
            )
    except IntegrityError as error:
        # A concurrent call with the same key committed first (the unique
        # index made this insert wait for it): answer as a repeat would.
        existing = after_race(Transfer, using, request.key, error)
        return replay(request, existing, source_id, destination_id, order.value, parent)
    posting.update_instances(lock.rows, *order.instances)
    return posted


def hold_placed(using: str, parents: list[Transfer], now: datetime) -> dict[int, datetime]:
    """When the holds that the captures among ``parents`` captured were placed.

    What a reversal of a capture gives back counted when its hold was
    placed. Read with the transfers (``hold_placed_at``, see
    :func:`original`), or else in one query, only for transfers recent
    enough to give anything back.
    """
    placed: dict[int, datetime] = {}
    missing = []
    for parent in parents:
        if "hold_placed_at" in parent.__dict__:
            if parent.__dict__["hold_placed_at"] is not None:
                placed[parent.pk] = parent.__dict__["hold_placed_at"]
        elif limits.may_give_back(parent.created, now):
            missing.append(parent.pk)
    if missing:
        placed.update(
            Hold.objects.using(using)
            .filter(capture__in=sorted(set(missing)))
            .values_list("capture", "created")
        )
    return placed


def give_back(
    parent: Transfer,
    src: Account,
    dst: Account,
    value: Decimal,
    now: datetime,
    placed: dict[int, datetime],
) -> None:
    """Give back to a reversed debit's source what its reversal moved back.

    ``src`` and ``dst`` are the reversal's locked rows. A debit that counted
    against its source's spending limits (``limits.counts``) gives back to
    the periods it counted in that are still running: it counted when
    posted or, for a capture, when its hold was placed (``placed``, from
    :func:`hold_placed`).
    """
    if limits.counts(dst, src):
        limits.give_back(dst, value, placed.get(parent.pk, parent.created), now)


def _reversed(using: str, parent: Transfer) -> Decimal:
    """What the reversals of ``parent`` moved so far, summed exactly (SQLite sums floats)."""
    moved = Transfer.objects.using(using).filter(parent=parent.pk).values_list("amount", flat=True)
    return sum(moved, Decimal(0))


def replay(
    request: Request,
    existing: Transfer,
    source_id: int,
    destination_id: int,
    value: Decimal | None,
    parent: Transfer | None,
) -> Transfer:
    """Answer a repeated key: the original transfer, or ``IdempotencyConflict``."""
    legacy = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and (value is None or posting.amount(existing, "amount") == value)
        and existing.parent_id == (parent.pk if parent is not None else None)
    )
    return request.replay(existing, legacy_match=legacy)
