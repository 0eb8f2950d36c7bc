"""
Freezing a collection run: one ``Debt`` per account of its scope that owed money.

What a debt owes, and the order locks are taken in, are described in
:mod:`accounts.collections`. :func:`freeze` writes the debts in batches,
each batch committed on its own; :func:`preview` computes them without
writing, for a dry run.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal

from django.db import router, transaction
from django.db.models import DecimalField, OuterRef, Subquery
from django.utils.translation import gettext_lazy as _

from . import amounts, clock, expiry, posting
from .collection_models import CollectionRun, Debt, Settlement
from .collection_runs import OPEN, PENDING, RUNNING, candidates, copy_run, run_pk
from .exceptions import CollectionRunNotDue, InvalidArgument
from .models import Account, Transaction
from .retry import retry_on_conflict

__all__ = ["freeze", "preview", "FREEZE_BATCH_SIZE"]

#: Accounts looked at per query (and per transaction) when freezing a run.
FREEZE_BATCH_SIZE = 500

_MONEY: DecimalField[Decimal, Decimal] = DecimalField(
    max_digits=amounts.MAX_DIGITS, decimal_places=amounts.DECIMAL_PLACES
)


def _balances_at(using: str, ids: list[int], moment: datetime.datetime) -> dict[int, Decimal]:
    """Each account's balance after its last leg at or before ``moment``, in one query.

    One index seek per account on (account, created, id), written as "the
    leg at the latest such moment" (see ``Account.balance_at``): the cost
    does not grow with the accounts' histories.
    """
    latest = (
        Transaction.objects.using(using)
        .filter(account=OuterRef(OuterRef("pk")), created__lte=moment)
        .order_by("-created")
        .values("created")[:1]
    )
    after = (
        Transaction.objects.using(using)
        .filter(account=OuterRef("pk"), created=Subquery(latest))
        .order_by("-pk")
        .values("balance_after")[:1]
    )
    rows = (
        Account.objects.using(using)
        .filter(pk__in=ids)
        .order_by()
        .annotate(at=Subquery(after, output_field=_MONEY))
        .values_list("pk", "at")
    )
    return {pk: balance for pk, balance in rows if balance is not None}


def _claimed(
    using: str, run: CollectionRun, ids: list[int], moment: datetime.datetime
) -> dict[int, Decimal]:
    """Per account, what other runs' debts claim of its debt at ``moment``.

    What their open debts still owe, and what any of them recovered after
    ``moment`` (not in the balance at ``moment``). Two indexed queries.
    """
    claimed: dict[int, Decimal] = {}
    open_debts = (
        Debt.objects.using(using)
        .filter(account__in=ids, status__in=OPEN)
        .exclude(run=run.pk)
        .values_list("account", "amount", "recovered")
    )
    for account_id, owed, recovered in open_debts:
        claimed[account_id] = claimed.get(account_id, Decimal(0)) + owed - recovered
    late = (
        Settlement.objects.using(using)
        .filter(debt__account__in=ids, transfer__created__gt=moment)
        .exclude(debt__run=run.pk)
        .values_list("debt__account", "transfer__amount")
    )
    for account_id, amount in late:
        claimed[account_id] = claimed.get(account_id, Decimal(0)) + amount
    return claimed


def _debts_of(
    using: str, run: CollectionRun, ids: list[int], currencies: dict[int, str]
) -> list[Debt]:
    """The debts of these accounts in ``run`` (unsaved), in a bounded number of queries."""
    balances = _balances_at(using, ids, run.freeze_at)
    in_debt = [pk for pk in ids if balances.get(pk, Decimal(0)) < 0]
    claimed = _claimed(using, run, in_debt, run.freeze_at) if in_debt else {}
    debts = []
    for pk in in_debt:
        if currencies.get(pk) != run.currency:
            continue
        owed = -balances[pk] - claimed.get(pk, Decimal(0))
        if owed > 0:
            debts.append(
                Debt(
                    run_id=run.pk,
                    account_id=pk,
                    currency=run.currency,
                    amount=owed,
                    balance_at_freeze=balances[pk],
                    claimed_elsewhere=claimed.get(pk, Decimal(0)),
                )
            )
    return debts


@retry_on_conflict
def freeze(
    run: CollectionRun,
    *,
    batch_size: int = FREEZE_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> CollectionRun:
    """Write the run's debts: one per account of its scope that owed money at ``freeze_at``.

    Each debt is the account's debt at ``freeze_at`` less what other runs'
    debts are collecting or recovered since (see ``accounts.collections``). The
    accounts are read in batches (``batch_size`` at a time): per batch, the
    accounts are locked (so that any transfer stamped before ``freeze_at``
    has committed), then the run, and their balances at ``freeze_at`` are
    read in one query, whatever their histories: the cost grows with the
    accounts, not with their legs. Each batch commits on its own, so a crash
    leaves a run that the next call finishes; two calls at once freeze each
    account once. Once every account is done the run is running (or, with no
    debt at all, succeeded). A run already frozen is returned as it is.
    ``progress`` is called with the number of accounts looked at after each
    batch.

    Raises ``CollectionRunNotDue`` while the database's clock has not passed
    ``freeze_at`` (nothing is written).
    """
    run_id = run_pk(run)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(
            _("The batch size must be a whole number of at least 1, not %(size)r."),
            size=batch_size,
        )
    using = router.db_for_write(CollectionRun)
    stored = CollectionRun.objects.using(using).get(pk=run_id)
    scope_accounts = candidates(using, stored)
    seen = 0
    while stored.status == PENDING:
        after = stored.frozen_through or 0
        ids = list(
            scope_accounts.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if ids:
            _freeze_batch(using, run_id, after, ids)
            seen += len(ids)
            if progress:
                progress(seen)
        else:
            _finish_freezing(using, run_id)
        stored = CollectionRun.objects.using(using).get(pk=run_id)
    copy_run(stored, run)
    return stored


def _freeze_batch(using: str, run_id: int, after: int, ids: list[int]) -> None:
    """Freeze one batch of accounts, in one transaction: accounts, then the run, locked."""
    with posting.locked(using, ids) as lock:
        locked = CollectionRun.objects.using(using).select_for_update().get(pk=run_id)
        if locked.status != PENDING or (locked.frozen_through or 0) != after:
            return  # another call froze this batch first; the caller reads the run again
        _check_due(locked, lock.now)
        currencies = {pk: row.currency for pk, row in lock.rows.items()}
        debts = _debts_of(using, locked, ids, currencies)
        Debt.objects.using(using)._add_frozen(debts)
        owed = sum((posting.amount(debt, "amount") for debt in debts), Decimal(0))
        CollectionRun.objects.using(using)._write(
            run_id,
            frozen_through=ids[-1],
            debt_count=locked.debt_count + len(debts),
            total_owed=posting.amount(locked, "total_owed") + owed,
        )


def _finish_freezing(using: str, run_id: int) -> None:
    """Every account is done: the run is running, or succeeded with no debt at all."""
    with transaction.atomic(using=using):
        locked = CollectionRun.objects.using(using).select_for_update().get(pk=run_id)
        if locked.status != PENDING:
            return
        now = clock.database_now(using)
        _check_due(locked, now)
        status = RUNNING if locked.debt_count else CollectionRun.Status.SUCCEEDED
        CollectionRun.objects.using(using)._write(
            run_id,
            status=status,
            frozen_at=now,
            finished_at=None if status == RUNNING else now,
        )


def _check_due(run: CollectionRun, now: datetime.datetime) -> None:
    if now <= run.freeze_at:
        raise CollectionRunNotDue(run=run, freeze_at=run.freeze_at, now=now)


def preview(run: CollectionRun, *, batch_size: int = FREEZE_BATCH_SIZE) -> list[Debt]:
    """The debts freezing the run would write now (unsaved), with those it already has.

    Reads the history as it stands, without locks, and writes nothing: for
    a dry run. A frozen run's debts are returned as they are.
    """
    run_id = run_pk(run)
    using = router.db_for_read(CollectionRun)
    stored = CollectionRun.objects.using(using).get(pk=run_id)
    debts = list(Debt.objects.using(using).filter(run=run_id).order_by("pk"))
    if stored.status != PENDING:
        return debts
    after = stored.frozen_through or 0
    for batch in expiry.batches(
        candidates(using, stored).filter(pk__gt=after).only("pk", "currency"), batch_size
    ):
        currencies = {account.pk: account.currency for account in batch}
        debts += _debts_of(using, stored, list(currencies), currencies)
    return debts
