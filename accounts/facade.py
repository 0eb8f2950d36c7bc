"""
The public write API of the ledger.

Every function here checks its arguments (nothing is written for bad input)
and hands the operation to the engine, which runs it on the one locked,
atomic path (``accounts.posting``): the accounts it touches are locked in
primary-key order and re-read, with the database's clock, and every rule
(``accounts.rules``) is judged on those rows. Instances passed in
(``Account``, ``Transfer``, ``Hold``) are used for their primary key only;
the ``Account`` instances passed get the balance, held amount and status
written to their rows.

Each operation runs inside ``transaction.atomic()``: its own transaction
when called on its own, a savepoint inside the caller's, so that the
caller's rollback undoes it too. A refusal raises an ``AccountException``
subclass and leaves nothing written.

Each operation runs again from the start when the database aborts it for a
concurrent change (a Galera certification conflict, a serialization
failure), up to ``ACCOUNTS_RETRY_ATTEMPTS`` times when it owns its
transaction; inside the caller's it raises ``RetryableConflict``: see
``accounts.retry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import router
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from . import (
    amounts,
    arguments,
    batches,
    declines,
    expiry,
    holds,
    posting,
    repayments,
    rules,
    status,
    transfers,
)
from .conf import conf
from .exceptions import AccountException, InvalidArgument, InvalidReversal, SameAccount
from .expiry import Expiry
from .idempotency import Request
from .models import Account, Batch, Hold, Transfer
from .retry import retry_on_conflict

if TYPE_CHECKING:
    from djmoney.money import Money

    Amount = Money | Decimal

__all__ = [
    "transfer",
    "transfer_many",
    "TransferRequest",
    "reverse",
    "reverse_batch",
    "repay",
    "hold",
    "capture",
    "release",
    "freeze",
    "thaw",
    "close",
    "change_status",
    "expire_hold",
    "expire_account",
    "Expiry",
]


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
    if allow_partial and parent is not None:
        raise InvalidArgument(_("A reversal cannot be partial-by-funds (allow_partial)."))
    source_id, destination_id = _pair(source, destination)
    value, currency = amounts.parse_amount(amount)
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    using = router.db_for_write(Transfer)
    original = None
    if parent is not None:
        original = transfers.original(using, arguments.saved_pk(parent, Transfer, _("transfer")))
        rules.check_reversal_shape(original, source_id, destination_id)
    text = _Texts(merchant_reference, description, idempotency_key)
    request = Request(
        "transfer",
        text.key,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
        parent=original.pk if original else None,
        allow_partial=bool(allow_partial),
        user=text.user(user),
        merchant_reference=text.merchant_reference,
        description=text.description,
        **_extra(metadata, effective_at),
    )
    with text.declined(
        using,
        declines.TRANSFER if original is None else declines.NOT_RECORDED,
        user,
        metadata,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
    ):
        return transfers.post(
            using,
            request,
            source_id=source_id,
            destination_id=destination_id,
            value=value,
            currency=currency,
            parent=original,
            allow_partial=bool(allow_partial),
            user=arguments.saved_user(user),
            merchant_reference=text.merchant_reference,
            description=text.description or "",
            instances=(source, destination),
            metadata=metadata,
            effective_at=effective_at,
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
    original = transfers.original(using, arguments.saved_pk(transfer, Transfer, _("transfer")))
    rules.check_reversal_shape(original, original.destination_id, original.source_id)
    value, currency = (None, None) if amount is None else amounts.parse_amount(amount)
    text = _Texts(merchant_reference, description, idempotency_key)
    given = None if metadata is None else arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    request = Request(
        "reverse",
        text.key,
        transfer=original.pk,
        amount=value,
        currency=currency,
        user=text.user(user),
        merchant_reference=text.merchant_reference,
        description=text.description,
        # None: the original's (a column that never changes).
        **_extra(given, effective_at, inherits=True),
    )
    return transfers.post(
        using,
        request,
        source_id=original.destination_id,
        destination_id=original.source_id,
        value=value,
        currency=currency,
        parent=original,
        user=arguments.saved_user(user),
        merchant_reference=(
            original.merchant_reference
            if text.merchant_reference is None
            else text.merchant_reference
        ),
        description=text.description or "",
        metadata=original.metadata if given is None else given,
        effective_at=effective_at,
    )


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
    source_id, destination_id = _pair(source, destination)
    value, currency = amounts.parse_amount(amount)
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    text = _Texts(merchant_reference, description, idempotency_key)
    request = Request(
        "repay",
        text.key,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
        user=text.user(user),
        merchant_reference=text.merchant_reference,
        description=text.description,
        **_extra(metadata, effective_at),
    )
    using = router.db_for_write(Transfer)
    with text.declined(
        using,
        declines.REPAY,
        user,
        metadata,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
    ):
        return repayments.repay(
            using,
            request,
            source_id=source_id,
            destination_id=destination_id,
            value=value,
            currency=currency,
            user=arguments.saved_user(user),
            merchant_reference=text.merchant_reference,
            description=text.description or "",
            instances=(source, destination),
            metadata=metadata,
            effective_at=effective_at,
        )


@dataclass(frozen=True)
class TransferRequest:
    """One transfer of a batch (:func:`transfer_many`): what :func:`transfer` takes per transfer.

    ``description`` and ``effective_at`` default to the batch's. ``parent``
    makes it a reversal of that transfer (``amount=None``: what is left of
    it). ``metadata`` is the transfer's (default ``{}``; a reversal's: the
    original's), not the batch's.
    """

    source: Account | int
    destination: Account | int
    amount: Amount | None
    merchant_reference: str | None = None
    description: str | None = None
    allow_partial: bool = False
    parent: Transfer | None = None
    metadata: dict[str, Any] | None = None
    effective_at: datetime | None = None


@retry_on_conflict
def transfer_many(
    requests: Sequence[TransferRequest],
    *,
    user: Any = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    atomic: bool = True,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Batch:
    """Post many transfers as one ``Batch``: one set of locks, one commit.

    Every account of the batch is locked at once, in key order; each request
    is judged by the rules of :func:`transfer`, in order, on the state the
    earlier ones leave. Linked (``atomic=True``, the default): all or
    nothing; the first refusal raises the exception :func:`transfer` would
    raise for that request, with ``index`` set to its position, and nothing
    is written. Independent (``atomic=False``): each request succeeds or is
    refused on its own, the good ones are written together, and
    ``batch.results`` lists, per request, its ``Transfer`` or its exception.

    Bad input in any request raises (with ``index``) before anything is
    locked, in both modes. With an ``idempotency_key``, the same requests
    with the same arguments return the same batch; anything else raises
    ``IdempotencyConflict``. Signals: ``transfer_posted`` for each transfer,
    then ``batch_posted``, once committed. ``ACCOUNTS_BATCH_MAX_SIZE``
    (default 1000) caps the number of requests. ``metadata`` is the
    batch's own (each request has its own too); ``effective_at`` is the
    default of requests that give none (default: the posting time).
    """
    requests = list(requests)
    if not requests or len(requests) > conf.BATCH_MAX_SIZE:
        raise InvalidArgument(
            _("A batch takes from 1 to %(max)s transfer requests, not %(count)s."),
            max=conf.BATCH_MAX_SIZE,
            count=len(requests),
        )
    using = router.db_for_write(Transfer)
    text = _Texts(None, description, idempotency_key)
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    planned = []
    for index, item in enumerate(requests):
        try:
            planned.append(_plan(using, item, text.description, effective_at))
        except AccountException as exc:
            exc.index = index  # type: ignore[attr-defined]
            raise
    request = Request(
        "batch",
        text.key,
        atomic=bool(atomic),
        user=text.user(user),
        description=text.description,
        requests=[_described(p) for p in planned],
        **_extra(metadata, effective_at),
    )
    try:
        posted = batches.post(
            using,
            request,
            planned,
            atomic=bool(atomic),
            user=arguments.saved_user(user),
            description=text.description or "",
            metadata=metadata,
        )
    except declines.DECLINED as exc:
        if conf.RECORD_DECLINES:
            refused = planned[exc.index]  # type: ignore[attr-defined]
            declines.write(using, [_declined(refused, exc, user, text)])
        raise
    if conf.RECORD_DECLINES:
        refusals = [
            _declined(planned[index], result, user, text)
            for index, result in enumerate(posted.results)  # type: ignore[attr-defined]
            if declines.is_decline(result) and planned[index].parent is None
        ]
        declines.write(using, refusals)
    return posted


def _declined(
    planned: batches.Planned, exc: AccountException, user: Any, text: _Texts
) -> tuple[str, AccountException, dict[str, Any]]:
    """What a decline of a request of a batch records."""
    return (
        declines.BATCH,
        exc,
        {
            "source": planned.source_id,
            "destination": planned.destination_id,
            "amount": planned.value,
            "currency": planned.currency,
            "merchant_reference": planned.merchant_reference,
            "description": planned.description,
            "user": arguments.saved_user(user),
            "idempotency_key": text.key,
            "metadata": planned.metadata or {},
        },
    )


@retry_on_conflict
def reverse_batch(
    batch: Batch,
    *,
    user: Any = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Batch:
    """Reverse what is left of every transfer of ``batch``, all or nothing, as one new batch.

    Transfers already fully reversed are left out (``None`` in the new
    batch's ``results``); the new batch's ``reverses`` is ``batch``. Only the
    primary key of ``batch`` is used. ``metadata`` is the new batch's; each
    reversal carries its original's metadata and ``effective_at`` (default:
    the posting time). Raises ``InvalidReversal`` when nothing is left to
    reverse, and what :func:`reverse` raises.
    """
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    using = router.db_for_write(Transfer)
    batch_id = arguments.saved_pk(batch, Batch, _("batch"))
    original = Batch.objects.using(using).filter(pk=batch_id).first()
    if original is None:
        raise InvalidArgument(_("Batch %(batch)s does not exist."), batch=batch_id)
    text = _Texts(None, description, idempotency_key)
    default = text.description or str(_("Reversal of batch %(batch)s") % {"batch": original})
    planned = []
    for transfer in original.transfers.using(using).annotate(hold_placed_at=F("hold__created")):
        rules.check_reversal_shape(transfer, transfer.destination_id, transfer.source_id)
        planned.append(
            batches.Planned(
                source_id=transfer.destination_id,
                destination_id=transfer.source_id,
                value=None,
                currency=None,
                parent=transfer,
                allow_partial=False,
                merchant_reference=transfer.merchant_reference,
                description=default,
                skip_when_reversed=True,
                metadata=transfer.metadata,
                effective_at=effective_at,
            )
        )
    if not planned:
        raise InvalidReversal(_("Batch %(batch)s has no transfers to reverse."), batch=original)
    request = Request(
        "reverse batch",
        text.key,
        batch=original.pk,
        user=text.user(user),
        description=text.description,
        **_extra(metadata, effective_at),
    )
    return batches.post(
        using,
        request,
        planned,
        atomic=True,
        user=arguments.saved_user(user),
        description=default,
        reverses=original,
        metadata=metadata,
    )


def _plan(
    using: str, item: Any, description: str | None, effective_at: datetime | None
) -> batches.Planned:
    """Check one request of a batch as :func:`transfer` checks its arguments."""
    if not isinstance(item, TransferRequest):
        raise InvalidArgument(_("A batch takes TransferRequest objects, not %(item)r."), item=item)
    if item.allow_partial and item.parent is not None:
        raise InvalidArgument(_("A reversal cannot be partial-by-funds (allow_partial)."))
    source_id, destination_id = _pair(item.source, item.destination)
    if item.amount is None and item.parent is not None:
        value, currency = None, None
    else:
        value, currency = amounts.parse_amount(item.amount)
    parent = None
    if item.parent is not None:
        parent = transfers.original(
            using, arguments.saved_pk(item.parent, Transfer, _("transfer"))
        )
        rules.check_reversal_shape(parent, source_id, destination_id)
    text = _Texts(item.merchant_reference, item.description, None)
    given = None if item.metadata is None else arguments.metadata(item.metadata)
    own = arguments.effective_at(item.effective_at)
    return batches.Planned(
        source_id=source_id,
        destination_id=destination_id,
        value=value,
        currency=currency,
        parent=parent,
        allow_partial=bool(item.allow_partial),
        merchant_reference=text.merchant_reference,
        description=(text.description if text.description is not None else description) or "",
        metadata=given if given is not None else parent.metadata if parent is not None else {},
        effective_at=own if own is not None else effective_at,
        given_metadata=given,
        given_effective_at=own,
    )


def _described(planned: batches.Planned) -> dict[str, Any]:
    """One request of a batch as its part of the batch's fingerprint."""
    return {
        "source": planned.source_id,
        "destination": planned.destination_id,
        "amount": planned.value,
        "currency": planned.currency,
        "parent": planned.parent.pk if planned.parent is not None else None,
        "allow_partial": planned.allow_partial,
        "merchant_reference": planned.merchant_reference,
        "description": planned.description,
        **_extra(
            planned.given_metadata,
            planned.given_effective_at,
            inherits=planned.parent is not None,
        ),
    }


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
    source_id, destination_id = _pair(source, destination)
    value, currency = amounts.parse_amount(amount)
    expires_at = arguments.expiry(expires_at)
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    text = _Texts(merchant_reference, description, idempotency_key)
    request = Request(
        "hold",
        text.key,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
        expires_at=expires_at,
        user=text.user(user),
        merchant_reference=text.merchant_reference,
        description=text.description,
        **_extra(metadata, effective_at),
    )
    using = router.db_for_write(Hold)
    with text.declined(
        using,
        declines.HOLD,
        user,
        metadata,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
    ):
        return holds.place(
            using,
            request,
            source_id=source_id,
            destination_id=destination_id,
            value=value,
            currency=currency,
            expires_at=expires_at,
            user=arguments.saved_user(user),
            merchant_reference=text.merchant_reference,
            description=text.description or "",
            instances=(source, destination),
            metadata=metadata,
            effective_at=effective_at,
        )


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
    value, currency = (None, None) if amount is None else amounts.parse_amount(amount)
    text = _Texts(None, description, idempotency_key)
    given = None if metadata is None else arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    request = Request(
        "capture",
        text.key,
        hold=hold_id,
        amount=value,
        currency=currency,
        user=text.user(user),
        description=text.description,
        # None: the hold's (read under the lock).
        **_extra(given, effective_at, inherits=True),
    )
    using = router.db_for_write(Hold)
    with text.declined(
        using,
        declines.CAPTURE,
        user,
        given or {},
        hold=hold_id,
        amount=value,
        currency=currency,
    ):
        captured, locked = holds.capture(
            using,
            request,
            hold_id,
            value=value,
            currency=currency,
            user=arguments.saved_user(user),
            description=text.description,
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


def freeze(account: Account) -> None:
    """Freeze an account: no money moves in or out until it is thawed.

    Raises ``ClosedAccount`` (a closed account stays closed) and
    ``ProtectedAccount`` (core accounts).
    """
    change_status(account, Account.Status.FROZEN)


def thaw(account: Account) -> None:
    """Open a frozen account again; a closed account stays closed (``ClosedAccount``)."""
    change_status(account, Account.Status.OPEN)


def close(account: Account) -> None:
    """Close an account for good.

    Refused with ``AccountNotEmpty`` unless its balance is zero and nothing
    is held, checked on the locked row, so a transfer committing at the same
    moment cannot leave money on a closed account. Raises ``ProtectedAccount``
    for a core account. Closing a closed account does nothing.
    """
    change_status(account, Account.Status.CLOSED)


@retry_on_conflict
def change_status(account: Account, new_status: str) -> None:
    """Move an account to ``new_status`` (an ``Account.Status``), checked on its locked row.

    The one way an account's status changes; :func:`freeze`, :func:`thaw`
    and :func:`close` call it. The instance gets the status, balance and
    held amount of its row. Raises ``InvalidArgument`` for an unknown status.
    """
    account_id = arguments.saved_pk(account, Account, _("account"))
    if new_status not in Account.Status.values:
        raise InvalidArgument(
            _("Unknown account status %(status)r: use one of %(choices)s."),
            status=new_status,
            choices=", ".join(Account.Status.values),
        )
    # Not the instance's database: an account read from a replica is changed
    # where the router writes.
    locked = status.change(router.db_for_write(Account), account_id, new_status)
    posting.update_instances({account_id: locked}, account)


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


@retry_on_conflict
def expire_account(
    account: Account | int,
    *,
    now: datetime | None = None,
    description: str | None = None,
    sink: Account | None = None,
) -> Expiry:
    """Close one account whose end date has passed, sweeping its money to the expired account.

    Under the account's lock and in one atomic block: active holds on it
    lapse (nothing can capture them any more), a positive balance moves to
    the expired core account of its currency (the one transfer allowed out of
    an account past its end date, recorded with ``user=None``), and the
    account is closed. A negative balance is left, and the account open, so
    the debt stays visible (its holds lapse all the same). A frozen, closed
    or core account, or one whose end date is no longer past the cut-off, is
    left untouched. The cut-off is ``now``, but never later than the
    database's clock under the lock. Used by
    ``accounts.expiry.close_expired_accounts``; safe to call concurrently
    (each account is swept once). ``sink``, the expired core account of the
    account's currency, saves a query when the caller already has it (only
    its primary key is used; it is checked under the lock).
    """
    description = arguments.text(description, _("Description"), None)
    return expiry.expire_account(account, now=now, description=description, sink=sink)


# Arguments -------------------------------------------------------------------------


class _Texts:
    """The text arguments of one call, checked: storable, within their lengths."""

    def __init__(self, merchant_reference: Any, description: Any, key: Any) -> None:
        self.key: str | None = arguments.text(key, _("Idempotency key"), 128, allow_empty=False)
        self.merchant_reference: str | None = arguments.text(
            merchant_reference, _("Merchant reference"), 128
        )
        self.description: str | None = arguments.text(description, _("Description"), None)

    def declined(
        self, using: str, operation: str, user: Any, metadata: Any, **request: Any
    ) -> AbstractContextManager[None]:
        """``declines.recorded`` for this call: its texts, user and metadata, and ``request``."""
        return declines.recorded(
            using,
            operation,
            merchant_reference=self.merchant_reference,
            description=self.description,
            user=arguments.saved_user(user),
            idempotency_key=self.key,
            metadata=metadata,
            **request,
        )

    @staticmethod
    def user(user: Any) -> int | None:
        """The user as part of a request: the primary key of a saved user, or ``None``."""
        saved = arguments.saved_user(user)
        return saved.pk if saved is not None else None


def _extra(
    metadata: dict[str, Any] | None, effective_at: datetime | None, *, inherits: bool = False
) -> dict[str, Any]:
    """``metadata`` and ``effective_at`` as part of a request's fingerprint.

    Left out when not given (``None``, or ``{}`` where that is the
    default), so that requests made before they existed keep their
    fingerprints: a retry of one still replays. Where ``None`` means "the
    original's" (``inherits``: a reversal, a capture), an explicit ``{}`` is
    another request and is kept.
    """
    extra: dict[str, Any] = {}
    if metadata or (metadata is not None and inherits):
        extra["metadata"] = metadata
    if effective_at is not None:
        extra["effective_at"] = effective_at
    return extra


def _pair(source: Any, destination: Any) -> tuple[int, int]:
    source_id = arguments.account_id(source, _("source"))
    destination_id = arguments.account_id(destination, _("destination"))
    if source_id == destination_id:
        raise SameAccount(account=source)
    return source_id, destination_id


def _copy_resolution(locked: Hold, hold: Hold) -> None:
    for name in ("status", "resolved_at", "resolved_by", "capture_id"):
        setattr(hold, name, getattr(locked, name))
