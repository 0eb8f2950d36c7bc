"""
Batches: many transfers posted as one, and a batch reversed as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import router
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from .. import amounts, arguments, batches, declines, rules
from ..conf import conf
from ..exceptions import AccountException, InvalidArgument, InvalidReversal
from ..models import Account, Batch, Transfer
from ..retry import retry_on_conflict
from ._calls import (
    Amount,
    Caller,
    amount_or_rest,
    check_partial,
    extra,
    metadata_or_original,
    pair,
    reversal_of,
    texts,
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
    caller = Caller(None, description, idempotency_key, user)
    metadata = arguments.metadata(metadata)
    effective_at = arguments.effective_at(effective_at)
    planned = []
    for index, item in enumerate(requests):
        try:
            planned.append(_plan(using, item, caller.description, effective_at))
        except AccountException as exc:
            # The position of the bad request, for the caller (not an
            # attribute of every AccountException).
            exc.index = index  # type: ignore[attr-defined]
            raise
    request = caller.request(
        "batch",
        metadata,
        effective_at,
        atomic=bool(atomic),
        # Only a key's fingerprint compares them.
        requests=[_described(p) for p in planned] if caller.key is not None else None,
    )
    try:
        posted = batches.post(
            using,
            request,
            planned,
            atomic=bool(atomic),
            user=caller.user,
            description=caller.description or "",
            metadata=metadata,
        )
    except declines.DECLINED as exc:
        if conf.RECORD_DECLINES:
            # batches.post sets the refused request's position on its refusal.
            refused = planned[exc.index]  # type: ignore[attr-defined]
            declines.write(using, [_declined(refused, exc, caller)])
        raise
    if conf.RECORD_DECLINES:
        refusals = [
            _declined(planned[index], result, caller)
            # batches.post sets results on the batch it returns (not a column).
            for index, result in enumerate(posted.results)  # type: ignore[attr-defined]
            if declines.is_decline(result) and planned[index].parent is None
        ]
        declines.write(using, refusals)
    return posted


def _declined(
    planned: batches.Planned, exc: AccountException, caller: Caller
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
            "user": caller.user,
            "idempotency_key": caller.key,
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
    caller = Caller(None, description, idempotency_key, user)
    default = caller.description or str(_("Reversal of batch %(batch)s") % {"batch": original})
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
    request = caller.request("reverse batch", metadata, effective_at, batch=original.pk)
    return batches.post(
        using,
        request,
        planned,
        atomic=True,
        user=caller.user,
        description=default,
        reverses=original,
        metadata=metadata,
    )


def _plan(
    using: str, item: object, description: str | None, effective_at: datetime | None
) -> batches.Planned:
    """Check one request of a batch as :func:`transfer` checks its arguments."""
    if not isinstance(item, TransferRequest):
        raise InvalidArgument(_("A batch takes TransferRequest objects, not %(item)r."), item=item)
    check_partial(item.allow_partial, item.parent)
    source_id, destination_id = pair(item.source, item.destination)
    if item.parent is not None:
        value, currency = amount_or_rest(item.amount)
    else:
        value, currency = amounts.parse_amount(item.amount)
    parent = None
    if item.parent is not None:
        parent = reversal_of(using, item.parent, source_id, destination_id)
    merchant_reference, own_description = texts(item.merchant_reference, item.description)
    given = metadata_or_original(item.metadata)
    own = arguments.effective_at(item.effective_at)
    return batches.Planned(
        source_id=source_id,
        destination_id=destination_id,
        value=value,
        currency=currency,
        parent=parent,
        allow_partial=bool(item.allow_partial),
        merchant_reference=merchant_reference,
        description=(own_description if own_description is not None else description) or "",
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
        **extra(
            planned.given_metadata,
            planned.given_effective_at,
            inherits=planned.parent is not None,
        ),
    }
