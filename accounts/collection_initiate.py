"""
Running a collection run: freezing it if need be, then initiating its debts.

Initiating a debt marks it initiated and sends ``debt_initiated`` once
committed (a receiver starts the direct debit or charge). Locks: the debt's
account, the debt, then its run (see :mod:`accounts.collections`); many
debts are initiated in batches, as the sweeps do (``accounts.expiry``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import arguments, clock, expiry, posting
from .collection_freeze import freeze, preview
from .collection_models import CollectionRun, Debt
from .collection_runs import (
    PENDING,
    account_of,
    copy_debt,
    copy_run,
    finish_locked,
    locked_debt,
    run_pk,
)
from .retry import retry_on_conflict
from .signals import debt_initiated

__all__ = ["initiate", "run_collection", "run_due_collections", "RunReport", "DEFAULT_BATCH_SIZE"]

# The name of the public module, which logged this before it was split.
logger = logging.getLogger("accounts.collections")

#: Debts initiated per commit (each in its own savepoint), as the sweeps do.
DEFAULT_BATCH_SIZE = expiry.DEFAULT_BATCH_SIZE


@retry_on_conflict
def initiate(debt: Debt) -> bool:
    """Mark a pending debt initiated; send ``debt_initiated`` once committed.

    Start the direct debit or charge in a receiver of that signal. Returns
    False (and changes nothing) when the debt is no longer pending: two
    calls at once initiate it once. Raises ``InvalidArgument`` for a debt
    that does not exist.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    using = router.db_for_write(Debt)
    locked = _initiate(using, debt_id, nowait=False)
    if locked is None:
        return False
    copy_debt(locked, debt)
    return True


class _RunTotals:
    """A run's locked row within one transaction, for the debts it covers."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.row: CollectionRun | None = None

    def lock(self, run_id: int, *, nowait: bool = False) -> CollectionRun:
        if self.row is None or self.row.pk != run_id:
            self.row = (
                CollectionRun.objects.using(self.using)
                .select_for_update(nowait=nowait)
                .get(pk=run_id)
            )
        return self.row


def _initiate(
    using: str,
    debt_id: int,
    *,
    nowait: bool,
    totals: _RunTotals | None = None,
    account_id: int | None = None,
) -> Debt | None:
    """Initiate one debt: its account, the debt, then its run, locked; ``None`` if not pending.

    ``account_id``, the debt's account, saves a query when the caller read it.
    """
    account_id = account_id or account_of(using, debt_id)
    with posting.locked(using, [account_id], nowait=nowait) as lock:
        locked = locked_debt(using, debt_id, nowait=nowait)
        if locked.status != Debt.Status.PENDING:
            return None
        owed = posting.amount(locked, "amount")
        run = (totals or _RunTotals(using)).lock(locked.run_id, nowait=nowait)
        initiated = posting.amount(run, "total_initiated") + owed
        Debt.objects.using(using)._write(
            debt_id, status=Debt.Status.INITIATED, initiated_at=lock.now
        )
        CollectionRun.objects.using(using)._write(run.pk, total_initiated=initiated)
        locked.status, locked.initiated_at = Debt.Status.INITIATED, lock.now
        posting.after_commit(using, debt_initiated, Debt, debt=locked)
    # Written only once the savepoint is released: a rollback leaves the row as read.
    run.__dict__["total_initiated"] = initiated
    return locked


@dataclass
class RunReport:
    """What :func:`run_collection` did with one run (or would do, with ``dry_run``)."""

    run: CollectionRun
    #: Whether this call froze the run (or, in a dry run, would).
    froze: bool = False
    #: Debts initiated (or that would be), and what they owe, in the run's currency.
    initiated: int = 0
    initiated_amount: Decimal = Decimal(0)
    #: Debts another process initiated first.
    skipped: int = 0
    failures: list[tuple[Debt, Exception]] = field(default_factory=list)


def run_collection(
    run: CollectionRun,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Debt, bool], None] | None = None,
) -> RunReport:
    """Run a due run: freeze it if it is not frozen yet, then initiate its pending debts.

    Debts are initiated in batches of ``batch_size`` (one commit per batch,
    each debt in its own savepoint; only the first debt of a transaction
    waits for its lock, as in the sweeps), each under its own lock and
    re-checked there, so running the same run twice, or twice at once,
    initiates each debt once. A debt that fails to initiate is in
    ``failures`` and the others go on. ``report(debt, initiated)`` is called
    with each debt once its batch is committed (``initiated`` is False for a
    debt another process initiated first); ``progress`` with the debts
    looked at so far. With ``dry_run`` nothing is written: a run not frozen
    yet is previewed (:func:`preview`).

    Raises ``CollectionRunNotDue`` for a run whose ``freeze_at`` has not
    passed yet (nothing is written).
    """
    run_id = run_pk(run)
    using = router.db_for_write(CollectionRun)
    stored = CollectionRun.objects.using(using).get(pk=run_id)
    result = RunReport(stored)
    if dry_run:
        result.froze = stored.status == PENDING
        for debt in preview(stored):
            if debt.status == Debt.Status.PENDING:
                result.initiated += 1
                result.initiated_amount += posting.amount(debt, "amount")
                if report:
                    report(debt, True)
        return result
    if stored.status == PENDING:
        stored = freeze(stored)
        result.froze = True
    totals = _RunTotals(using)
    done: list[tuple[Debt, bool]] = []

    def handle(debt: Debt, nowait: bool) -> Callable[[], None]:
        if not nowait:
            totals.row = None  # a new transaction: read the run's row again
        locked = _initiate(
            using, debt.pk, nowait=nowait, totals=totals, account_id=debt.account_id
        )

        # Counted once committed: a transaction lost to a conflict runs again.
        def record() -> None:
            if locked is None:
                result.skipped += 1
                done.append((debt, False))
                return
            result.initiated += 1
            result.initiated_amount += posting.amount(locked, "amount")
            done.append((locked, True))

        return record

    def fail(debt: Debt, exc: Exception) -> None:
        totals.row = None
        logger.error("Could not initiate debt %s", debt.pk, exc_info=exc)
        result.failures.append((debt, exc))

    pending = Debt.objects.using(using).filter(run=run_id, status=Debt.Status.PENDING)
    expiry.sweep(
        using, pending, batch_size, handle, fail, done=done, report=report, progress=progress
    )
    _finish(using, run_id)
    result.run = CollectionRun.objects.using(using).get(pk=run_id)
    copy_run(result.run, run)
    return result


def run_due_collections(
    *,
    now: datetime.datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Debt, bool], None] | None = None,
) -> list[RunReport]:
    """:func:`run_collection` for every run due at ``now`` (default: the current time).

    A run is due once its ``freeze_at`` has passed, until it is finished;
    ``now`` is capped by the database's clock under the locks (a run is
    frozen only once the database's clock has passed its ``freeze_at``).
    """
    using = router.db_for_write(CollectionRun)
    cutoff = now or timezone.now()
    if not dry_run:
        cutoff = min(cutoff, clock.database_now(using))
    reports = []
    for run in CollectionRun.objects.using(using).due(cutoff).order_by("freeze_at", "pk"):
        reports.append(
            run_collection(
                run, dry_run=dry_run, batch_size=batch_size, progress=progress, report=report
            )
        )
    return reports


def _finish(using: str, run_id: int) -> None:
    """Give a running run whose debts are all resolved its final status (run lock only)."""
    with transaction.atomic(using=using):
        locked = CollectionRun.objects.using(using).select_for_update().get(pk=run_id)
        finish_locked(using, locked, None)
