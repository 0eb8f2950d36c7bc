"""
Batches: many transfers under one set of locks and one commit.

:func:`post` locks every account of the batch with one ``SELECT ... ORDER BY
id FOR UPDATE`` (the same key order as every other operation, so a batch
never deadlocks with single transfers, holds, sweeps or other batches),
reads the database's clock, marks the lapsed holds of every source that has
a credit limit, then judges each request in order with the rules of a
single transfer (``accounts.rules.decide_transfer``) on the evolving state:
a later request sees the balances the earlier ones leave, and each leg's
``balance_after`` is the running balance. It writes the batch, all its
transfers, all their legs and every account's new balance in a fixed
number of statements, whatever the number of transfers.

* Linked (``atomic=True``): all or nothing. The first request a rule
  refuses raises the exception a single transfer would raise, with
  ``index`` set to its position; nothing is written.
* Independent (``atomic=False``): each request succeeds or fails on its own
  (a refused one changes nothing the others see); the good ones are written
  together, and ``batch.results`` lists, per request, its ``Transfer`` or
  its exception.

What it decides on, and where it reads it, is what a single transfer reads
(``accounts.transfers``): the locked account rows, the database's clock,
transfers to reverse read by primary key and their reversals read after
the locks, and the stored batch with the same idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import IntegrityError, connections
from django.utils.translation import gettext_lazy as _

from . import arguments, limits, posting, rules, signals, sql, transfers
from .exceptions import AccountException, InvalidReversal
from .idempotency import Request, after_race
from .model_columns import generate_references
from .models import Account, Batch, Hold, Transfer
from .sql import prepared

#: The sums' start (what is left, freed, reversed so far).
_ZERO = Decimal(0)


@dataclass
class Planned:
    """One request of a batch, its arguments checked (see ``facade.TransferRequest``)."""

    source_id: int
    destination_id: int
    value: Decimal | None
    currency: str | None
    parent: Transfer | None
    allow_partial: bool
    merchant_reference: str | None
    description: str
    #: A reversal of a batch leaves out a transfer that has nothing left to reverse.
    skip_when_reversed: bool = False
    #: The transfer's metadata, and when it took effect (``None``: when posted).
    metadata: dict[str, Any] = field(default_factory=dict)
    effective_at: datetime | None = None
    #: Both as the request gave them (its fingerprint).
    given_metadata: dict[str, Any] | None = None
    given_effective_at: datetime | None = None


def post(
    using: str,
    request: Request,
    planned: list[Planned],
    *,
    atomic: bool,
    user: Any,
    description: str,
    reverses: Batch | None = None,
    metadata: dict[str, Any] | None = None,
) -> Batch:
    """Post the planned transfers as one batch; see ``facade.transfer_many``.

    In its own transaction, the batch's statements are prepared on
    PostgreSQL (``accounts.sql.prepared``); a server session that lost one
    rolled the whole batch back, which is posted once more, unprepared.
    Inside the caller's transaction nothing is prepared: such an error
    would end the caller's transaction too.
    """
    connection = connections[using]
    return prepared.retry_unprepared(
        connection,
        lambda prepare: _post(
            using,
            request,
            planned,
            atomic=atomic,
            user=user,
            description=description,
            reverses=reverses,
            metadata=metadata,
            prepare=prepare,
        ),
        prepare=not connection.in_atomic_block and prepared.usable(connection),
    )


def _post(
    using: str,
    request: Request,
    planned: list[Planned],
    *,
    atomic: bool,
    user: Any,
    description: str,
    reverses: Batch | None,
    metadata: dict[str, Any] | None,
    prepare: bool,
) -> Batch:
    ids = {p.source_id for p in planned} | {p.destination_id for p in planned}
    # Drawn before the locks: they need nothing the locks protect.
    references = generate_references(len(planned))
    try:
        # Only the sources' spending limits: nothing else is debited.
        sources = {p.source_id for p in planned}
        with posting.locked(using, sorted(ids), limits=sources, prepare=prepare) as lock:
            existing = request.find(Batch, using)
            if existing is not None:
                return _replay(using, request, existing)
            rows, now = lock.rows, lock.now
            for item in planned:
                # Bad input, before any rule: nothing takes effect after it is posted.
                arguments.check_effective_at(item.effective_at, now)
            # Holds past their expiry stop reserving money, for good (the
            # caller's atomic block undoes it with everything else).
            lapsed: list[Hold] = []
            limited = [rows[pk] for pk in sources]
            for src in sorted(limited, key=lambda row: row.pk):
                if posting.credit_limit(src) is not None or lock.limits.get(src.pk):
                    lapsed += _lapse(using, src, now)
            reversed_totals = _reversed(using, planned)
            parents = [p.parent for p in planned if p.parent is not None]
            placed = transfers.hold_placed(using, parents, now) if parents else {}
            legs: list[Leg] = []
            results: list[Transfer | AccountException | None] = []
            periods = limits.starts(now)
            # What every transfer of the batch records the same way.
            common = _common(user, now)
            decide, spending = rules.decide_transfer, lock.limits
            for index, item in enumerate(planned):
                source_id, destination_id = item.source_id, item.destination_id
                src, dst = rows[source_id], rows[destination_id]
                parent = item.parent
                if item.skip_when_reversed and _nothing_left(item, reversed_totals):
                    results.append(None)
                    continue
                try:
                    moved = decide(
                        src,
                        dst,
                        item.value,
                        item.currency,
                        now,
                        allow_partial=item.allow_partial,
                        parent=parent,
                        reversed_total=(
                            reversed_totals.get(parent.pk, _ZERO) if parent is not None else _ZERO
                        ),
                        spending_limits=spending.get(source_id),
                    )
                except AccountException as exc:
                    exc.index = index  # type: ignore[attr-defined]
                    if atomic:
                        raise
                    results.append(exc)
                    continue
                if parent is not None:
                    reversed_totals[parent.pk] = reversed_totals.get(parent.pk, _ZERO) + moved
                    transfers.give_back(parent, src, dst, moved, now, placed)
                elif limits.counts(src, dst):
                    limits.spend(src, moved, now, periods)
                leg = _apply(src, dst, moved, item, common, index, references[index])
                legs.append(leg)
                results.append(leg.transfer)
            if not legs and any(item.skip_when_reversed for item in planned):
                raise InvalidReversal(
                    _("Every transfer of batch %(batch)s has already been fully reversed."),
                    batch=reverses,
                )
            batch = Batch(
                atomic=atomic,
                size=len(planned),
                reverses=reverses,
                description=description,
                **posting.recorded(request, user, now),
                metadata=metadata or {},
            )
            _write(using, batch, legs, rows, lapsed, now, prepare)
    except IntegrityError as error:
        existing = after_race(Batch, using, request.key, error)
        return _replay(using, request, existing)
    batch.results = results  # type: ignore[attr-defined]
    return batch


def _nothing_left(item: Planned, reversed_totals: dict[int, Decimal]) -> bool:
    assert item.parent is not None
    left = posting.amount(item.parent, "amount") - reversed_totals.get(item.parent.pk, _ZERO)
    return left <= 0


def _common(user: Any, now: Any) -> dict[str, Any]:
    """The columns every transfer of a batch records the same way (who asked, and when)."""
    return {
        "user_id": user.pk if user is not None else None,
        "username": posting.username(user),
        "created": now,
    }


def _apply(
    src: Account,
    dst: Account,
    moved: Decimal,
    item: Planned,
    common: dict[str, Any],
    index: int,
    reference: str,
) -> Leg:
    """Move ``moved`` between the locked rows in memory; return the leg to write.

    Its transfer, and both accounts' balances right after it.
    """
    source_after = src.__dict__["balance"] = posting.amount(src, "balance") - moved
    destination_after = dst.__dict__["balance"] = posting.amount(dst, "balance") + moved
    transfer = posting.new_transfer(
        reference=reference,
        source_id=item.source_id,
        destination_id=item.destination_id,
        currency=src.__dict__["currency"],
        amount=moved,
        parent_id=item.parent.pk if item.parent is not None else None,
        batch_position=index,
        merchant_reference=item.merchant_reference,
        description=item.description,
        effective_at=item.effective_at or common["created"],
        metadata=item.metadata,
        **common,
    )
    return Leg(
        transfer, item.source_id, item.destination_id, moved, source_after, destination_after
    )


class Leg(NamedTuple):
    """A transfer of the batch, its accounts, and their balances right after it."""

    transfer: Transfer
    source_id: int
    destination_id: int
    moved: Decimal
    source_after: Decimal
    destination_after: Decimal


def _write(
    using: str,
    batch: Batch,
    legs: list[Leg],
    rows: dict[int, Account],
    lapsed: list[Hold],
    now: Any,
    prepare: bool,
) -> None:
    """Write the batch, its transfers, their legs and the balances, in fixed statements."""
    transfers = [leg.transfer for leg in legs]
    entries = []
    for position, leg in enumerate(legs):
        currency, moved = leg.transfer.__dict__["currency"], leg.moved
        entries.append((position, leg.source_id, currency, -moved, leg.source_after, now))
        entries.append((position, leg.destination_id, currency, moved, leg.destination_after, now))
    touched = {leg.source_id for leg in legs} | {leg.destination_id for leg in legs}
    touched |= {hold.source_id for hold in lapsed}
    # The same columns on every row (one array on PostgreSQL): the spending
    # usage too, unchanged where nothing counted, when the batch changed
    # any account's (a source that spent, a reversal or a lapsed hold that
    # gave back); else the balances only (top-ups from the source account).
    usage = any(limits.changed(rows[pk]) for pk in touched)
    written = {}
    for pk in touched:
        row = rows[pk]
        columns = {"balance": posting.amount(row, "balance"), "held": posting.amount(row, "held")}
        if usage:
            values = row.__dict__
            columns.update({name: values[name] for name in limits.USAGE_COLUMNS})
        written[pk] = columns
    names = WRITTEN if usage else BALANCES
    sql.write_batch(using, batch, transfers, entries, written, names, prepare=prepare)
    if lapsed:
        posting.resolve_holds(using, lapsed, Hold.Status.EXPIRED, None, now)
    posting.after_commit_all(
        using,
        [(signals.transfer_posted, Transfer, {"transfer": t}) for t in transfers]
        + [(signals.batch_posted, Batch, {"batch": batch})],
    )


#: The columns a batch writes on each account it touches: with the spending
#: usage, or (when the batch changed no account's) without.
WRITTEN = sorted(("balance", "held", *limits.USAGE_COLUMNS))
BALANCES = ["balance", "held"]


def _lapse(using: str, src: Account, now: Any) -> list[Hold]:
    """The active holds of a locked source past their expiry, taken out of its ``held``."""
    if not posting.amount(src, "held"):
        return []
    holds = list(
        posting.locked_holds(using)
        .filter(source=src.pk, status=Hold.Status.ACTIVE, expires_at__lte=now)
        .order_by("pk")
    )
    freed = sum((posting.amount(h, "amount") for h in holds), _ZERO)
    src.__dict__["held"] = posting.amount(src, "held") - freed
    for hold in holds:
        limits.give_back(src, posting.amount(hold, "amount"), hold.created, now)
    return holds


def _reversed(using: str, planned: list[Planned]) -> dict[int, Decimal]:
    """What the reversals of each transfer a request reverses moved so far (one query)."""
    parents = {p.parent.pk for p in planned if p.parent is not None}
    if not parents:
        return {}
    totals: dict[int, Decimal] = {}
    reversals = Transfer.objects.using(using).filter(parent__in=parents)
    for parent_id, amount in reversals.values_list("parent", "amount"):
        totals[parent_id] = totals.get(parent_id, _ZERO) + amount
    return totals


def _replay(using: str, request: Request, existing: Batch) -> Batch:
    """Answer a repeated key with the stored batch, or raise ``IdempotencyConflict``.

    Its ``results`` are its transfers at their positions (``None`` where a
    request of an independent batch was refused: the refusal is not kept),
    read where the batch was found: a lagging replica would answer a batch
    just posted with no transfers.
    """
    batch = request.replay(existing, legacy_match=False)
    transfers = {t.batch_position: t for t in existing.transfers.using(using)}
    batch.results = [transfers.get(n) for n in range(existing.size)]  # type: ignore[attr-defined]
    return batch
