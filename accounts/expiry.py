"""
Sweeps run from cron (or Celery): holds past their expiry, expired accounts.

Each item is handled in its own atomic block, through the facade's locked
path, and re-checked under the lock: two sweeps running at once handle each
item once, and a crash leaves every item either done or untouched, for the
next run to finish. Items are read in primary-key batches, so memory stays
bounded however many there are; the atomic blocks of one batch are
savepoints committed together, because a commit (a WAL flush) per item
would be most of the sweep's time.

A transaction that handles several items keeps every lock it took until it
commits, so the sweeps take their locks differently from the facade's
callers: only the first item of a transaction waits for its rows; later
ones lock with ``NOWAIT``, and an item whose rows another transaction holds
ends the transaction (committing the items before it) and starts the next
one. A sweep therefore never waits while holding a lock, and cannot close a
cycle with a transfer, whatever order its items come in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import facade, sql
from .exceptions import InvalidArgument
from .models import Account, Hold

Item = TypeVar("Item")

logger = logging.getLogger(__name__)

#: Rows read per query, and handled per commit (each row in its own savepoint).
DEFAULT_BATCH_SIZE = 100


def batches(queryset: QuerySet, batch_size: int) -> Iterator[list[Any]]:
    """Yield the queryset's rows in primary-key order, ``batch_size`` at a time.

    Keyset pagination (``pk > last``), not OFFSET: rows handled in one batch
    may leave the queryset, which would make OFFSET skip others. Raises
    ``InvalidArgument`` unless ``batch_size`` is a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(
            _("The batch size must be a whole number of at least 1, not %(size)r."),
            size=batch_size,
        )
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page[:batch_size])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


def _run_batch(
    batch: list[Item],
    handle: Callable[[Item], None],
    fail: Callable[[Item, Exception], None],
) -> None:
    """Call ``handle`` on each item, committing once per batch where the locks allow.

    ``handle`` runs each item in its own atomic block (the facade's), so here
    it is a savepoint. The first item of each transaction may wait for its
    locks; the others lock with ``NOWAIT``: if their rows are busy, the
    transaction commits what it has done and the item starts the next one,
    where waiting is safe because nothing else is held. Any other exception
    goes to ``fail`` (logged there), and the batch goes on.
    """
    start = 0
    while start < len(batch):
        with transaction.atomic():
            index = start
            while index < len(batch):
                item = batch[index]
                token = sql.nowait.set(index > start)
                try:
                    handle(item)
                except Exception as exc:  # noqa: BLE001 - one failure must not stop the sweep
                    if index > start and sql.locks_busy(exc):
                        break
                    fail(item, exc)
                finally:
                    sql.nowait.reset(token)
                index += 1
        start = index


@dataclass
class HoldSweep:
    """What ``release_expired_holds`` did (or, with ``dry_run``, would do)."""

    expired: int = 0
    #: Amount freed, per currency.
    freed: dict[str, Decimal] = field(default_factory=dict)
    #: Holds another process resolved first (nothing done here).
    skipped: int = 0
    failures: list[tuple[Hold, Exception]] = field(default_factory=list)


def release_expired_holds(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Hold, bool], None] | None = None,
) -> HoldSweep:
    """Mark every active hold past its expiry as expired, freeing what it reserved.

    ``now`` (default: the current time) is the moment to judge expiry at.
    With ``dry_run`` nothing is written. ``progress`` is called with the
    number of holds looked at so far after each batch; ``report(hold,
    expired)`` with each hold once its batch is committed (``expired`` is
    False for a hold another process resolved first).
    """
    now = now or timezone.now()
    result = HoldSweep()
    seen = 0
    candidates = Hold.objects.past_expiry(now).only(
        "pk", "reference", "source_id", "currency", "amount"
    )
    done: list[tuple[Hold, bool]] = []

    def handle(hold: Hold) -> None:
        if dry_run or facade.expire_hold(hold, now=now):
            result.expired += 1
            result.freed[hold.currency] = (
                result.freed.get(hold.currency, Decimal(0)) + hold.amount.amount
            )
            done.append((hold, True))
        else:
            result.skipped += 1
            done.append((hold, False))

    def fail(hold: Hold, exc: Exception) -> None:
        logger.error("Could not expire hold %s", hold.pk, exc_info=exc)
        result.failures.append((hold, exc))

    for batch in batches(candidates, batch_size):
        _run_batch(batch, handle, fail)
        _report(done, report)
        seen += len(batch)
        if progress:
            progress(seen)
    return result


def _report(done: list[Any], report: Callable[..., None] | None) -> None:
    """Hand a committed batch's items to ``report``, then forget them (memory stays flat)."""
    if report is not None:
        for item in done:
            report(*item)
    done.clear()


@dataclass
class AccountSweep:
    """What ``close_expired_accounts`` did (or, with ``dry_run``, would do)."""

    #: Accounts closed (with or without a balance to sweep).
    closed: int = 0
    #: Accounts whose balance was moved to the expired account.
    swept_accounts: int = 0
    #: Total moved to the expired accounts, per currency.
    swept: dict[str, Decimal] = field(default_factory=dict)
    #: Expired accounts with a negative balance, left open: (account, balance).
    in_debt: list[tuple[Account, Any]] = field(default_factory=list)
    #: Frozen expired accounts, left alone.
    frozen: list[Account] = field(default_factory=list)
    #: Accounts another run closed first, or no longer expired under the lock.
    skipped: int = 0
    holds_expired: int = 0
    failures: list[tuple[Account, Exception]] = field(default_factory=list)


def close_expired_accounts(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Account, facade.Expiry], None] | None = None,
) -> AccountSweep:
    """Close every account whose end date is before ``now``, sweeping its money away.

    A positive balance moves to the expired core account of the account's
    currency, then the account is closed (``facade.expire_account``, one
    atomic block per account). Zero balances are just closed. Negative
    balances (unpaid credit) are reported in ``in_debt`` and left open;
    frozen accounts are reported and left alone; core accounts never expire.
    One account failing does not stop the others; it is in ``failures``.
    Running it again changes nothing that is already done.

    Each account is handled in its own atomic block; the blocks of one batch
    are committed together, so a crash loses at most the uncommitted batch,
    whose accounts are then untouched. ``report(account, outcome)`` is
    called with each account once its batch is committed.
    """
    now = now or timezone.now()
    result = AccountSweep()
    seen = 0
    candidates = (
        Account.objects.expired(now)
        .filter(role__isnull=True)
        .exclude(status=Account.Status.CLOSED)
    )
    sinks: dict[str, Account] = {}
    done: list[tuple[Account, facade.Expiry]] = []

    def handle(account: Account) -> None:
        if dry_run:
            outcome = _preview(account)
        else:
            if account.currency not in sinks:
                sinks[account.currency] = Account.objects.expired_account(account.currency)
            outcome = facade.expire_account(account, now=now, sink=sinks[account.currency])
        _count(result, account, outcome)
        done.append((account, outcome))

    def fail(account: Account, exc: Exception) -> None:
        logger.error("Could not close expired account %s", account.pk, exc_info=exc)
        result.failures.append((account, exc))

    for batch in batches(candidates, batch_size):
        _run_batch(batch, handle, fail)
        _report(done, report)
        seen += len(batch)
        if progress:
            progress(seen)
    return result


def _preview(account: Account) -> facade.Expiry:
    """What ``expire_account`` would do, judged from the row as read (dry run)."""
    if account.status == Account.Status.FROZEN:
        return facade.Expiry("frozen")
    if account.balance.amount < 0:
        return facade.Expiry("debt", amount=account.balance)
    if account.balance.amount > 0:
        return facade.Expiry("swept", amount=account.balance)
    return facade.Expiry("closed")


def _count(result: AccountSweep, account: Account, outcome: facade.Expiry) -> None:
    result.holds_expired += outcome.holds_expired
    if outcome.outcome == "swept":
        result.closed += 1
        result.swept_accounts += 1
        currency = outcome.amount.currency.code
        result.swept[currency] = result.swept.get(currency, Decimal(0)) + outcome.amount.amount
    elif outcome.outcome == "closed":
        result.closed += 1
    elif outcome.outcome == "debt":
        result.in_debt.append((account, outcome.amount))
    elif outcome.outcome == "frozen":
        result.frozen.append(account)
    else:
        result.skipped += 1
