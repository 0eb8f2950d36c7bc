"""
Moving money between two accounts: transfers, reversals and repayments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import router

from .. import arguments, declines, repayments, transfers
from ..models import Account, Transfer
from ..posting import Order
from ..retry import retry_on_conflict
from ._calls import (
    Amount,
    Caller,
    Movement,
    amount_or_rest,
    check_partial,
    metadata_or_original,
    reversal_of,
)


@retry_on_conflict
def transfer(
    source: Account | int,
    destination: Account | int,
    amount: Amount,
    *,
    parent: Transfer | None = None,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    allow_partial: bool = False,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Transfer:
    """Move ``amount`` from ``source`` to ``destination`` and return the ``Transfer``.

    ``amount`` is a ``Money`` or a ``Decimal`` (in the accounts' currency).
    ``parent`` makes the transfer a reversal of that transfer (see
    :func:`reverse`, which is usually what you want). ``user`` is recorded
    (with a username snapshot) but not checked: deciding who may move money
    is the caller's job. With an ``idempotency_key``, repeating exactly the
    same call returns the original transfer and writes nothing; the same key
    with any other argument raises ``IdempotencyConflict``. With
    ``allow_partial=True`` the transfer moves as much of ``amount`` as the
    source can cover right now (at least one minor unit) and records what
    it moved.

    ``metadata`` (a JSON object, default ``{}``) is stored on the transfer
    and never changes; ``effective_at`` (an aware datetime, default the
    posting time) says when the movement happened in the world, and may not
    be later than the posting time (the database's clock under the lock).
    Both are part of the request an ``idempotency_key`` names.

    On success the ``Account`` instances passed in get their new
    ``balance`` and ``held``. The ``transfer_posted`` signal is sent once
    the outermost transaction commits.

    Raises ``InvalidAmount``, ``InvalidAccount``, ``SameAccount``,
    ``InvalidArgument``, ``CurrencyMismatch``, ``ClosedAccount``,
    ``FrozenAccount``, ``AccountExpired``, ``AccountNotYetActive``,
    ``InsufficientFunds``, ``InvalidReversal`` (with ``parent``) and
    ``IdempotencyConflict``; all subclass ``AccountException``, and none
    leaves anything written.
    """
    check_partial(allow_partial, parent)
    move = Movement.parse(source, destination, amount, metadata, effective_at)
    using = router.db_for_write(Transfer)
    original = None
    if parent is not None:
        original = reversal_of(using, parent, move.source_id, move.destination_id)
    caller = Caller(merchant_reference, description, idempotency_key, user)
    request = move.request(
        "transfer",
        caller,
        parent=original.pk if original else None,
        allow_partial=bool(allow_partial),
    )
    operation = declines.TRANSFER if original is None else declines.NOT_RECORDED
    with move.declined(using, operation, caller):
        return transfers.post(
            using,
            request,
            move.order(caller),
            parent=original,
            allow_partial=bool(allow_partial),
        )


@retry_on_conflict
def reverse(
    transfer: Transfer,
    *,
    amount: Amount | None = None,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Transfer:
    """Move (part of) a transfer's amount back, from its destination to its source.

    ``amount=None`` reverses whatever has not been reversed yet. Partial
    reversals are allowed until the original is fully reversed. The reversal
    is a transfer with ``parent`` set to the original; the same account
    rules apply (the money must still be on the destination, both accounts
    usable). ``merchant_reference`` and ``metadata`` default to the
    original's; ``effective_at`` to the reversal's posting time. Everything
    about the original is read from the database: only the primary key of
    ``transfer`` is used.

    Raises ``InvalidReversal`` when the transfer is itself a reversal, is
    already fully reversed, or ``amount`` exceeds what is left (also when two
    reversals race), and every error :func:`transfer` raises.
    """
    using = router.db_for_write(Transfer)
    original = reversal_of(using, transfer)
    value, currency = amount_or_rest(amount)
    caller = Caller(merchant_reference, description, idempotency_key, user)
    given = metadata_or_original(metadata)
    effective_at = arguments.effective_at(effective_at)
    request = caller.request(
        "reverse",
        given,
        effective_at,
        inherits=True,
        transfer=original.pk,
        amount=value,
        currency=currency,
        merchant_reference=caller.merchant_reference,
    )
    order = Order(
        source_id=original.destination_id,
        destination_id=original.source_id,
        value=value,
        currency=currency,
        user=caller.user,
        merchant_reference=(
            original.merchant_reference
            if caller.merchant_reference is None
            else caller.merchant_reference
        ),
        description=caller.description or "",
        # None: the original's (a column that never changes).
        metadata=original.metadata if given is None else given,
        effective_at=effective_at,
    )
    return transfers.post(using, request, order, parent=original)


@retry_on_conflict
def repay(
    source: Account | int,
    destination: Account | int,
    amount: Amount,
    *,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Transfer | None:
    """Repay the destination's debt from ``source``: move ``amount``, or less if it owes less.

    The debt is minus the destination's balance when it is below zero,
    read under its lock: what moves is the least of ``amount`` and the debt
    at that moment, and the transfer is returned. With no debt nothing
    moves and ``None`` is returned. Each repayment that moved money, and
    each one with an ``idempotency_key``, is recorded as a ``Repayment``
    (what was asked, the debt found, the transfer): with a key, repeating
    exactly the same call returns the same outcome, ``None`` included, even
    if the debt has changed since; the same key with any other argument
    raises ``IdempotencyConflict``. The source is debited as by
    :func:`transfer` (funds, credit limit, spending limits). ``metadata``
    and ``effective_at`` are the transfer's, as for :func:`transfer`.

    Raises what :func:`transfer` raises (but ``InvalidReversal``).
    """
    move = Movement.parse(source, destination, amount, metadata, effective_at)
    caller = Caller(merchant_reference, description, idempotency_key, user)
    request = move.request("repay", caller)
    using = router.db_for_write(Transfer)
    with move.declined(using, declines.REPAY, caller):
        return repayments.repay(using, request, move.order(caller))
