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

Everything a sweep reads and writes goes through the database the router
writes to (``router.db_for_write``), never a read replica: which items to
handle is a decision too. A transaction the database aborts for a write
conflict (a Galera cluster's certification, see ``accounts.retry``) loses
every item done in it, so it runs again from its first item; what the sweep
reports is counted only once a transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import router, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import facade, retry, sql
from .conf import conf
from .exceptions import InvalidArgument, RetryableConflict
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
    using: str,
    batch: list[Item],
    handle: Callable[[Item], Callable[[], None]],
    fail: Callable[[Item, Exception], None],
) -> None:
    """Call ``handle`` on each item, committing once per batch where the locks allow.

    ``handle`` runs each item in its own atomic block (the facade's), so here
    it is a savepoint, and returns what to record once the item is committed.
    The first item of each transaction may wait for its locks; the others
    lock with ``NOWAIT``: if their rows are busy, the transaction commits
    what it has done and the item starts the next one, where waiting is safe
    because nothing else is held. Any other exception goes to ``fail``
    (logged there), and the batch goes on.

    A write conflict aborts the whole transaction, the items done before it
    too: the transaction runs again from its first item, after a random wait
    (``accounts.retry``), up to ``ACCOUNTS_RETRY_ATTEMPTS`` times; then its
    items fail with ``RetryableConflict`` and the batch goes on. Inside a
    caller's transaction the conflict is raised instead.
    """
    start = 0
    attempt = 1
    # Inside a caller's transaction a lost transaction is the caller's to rerun.
    owned = not transaction.get_connection(using).in_atomic_block
    while start < len(batch):
        recorded: list[Callable[[], None]] = []
        failed: list[tuple[Item, Exception]] = []
        index = end = start
        try:
            with transaction.atomic(using=using):
                while index < len(batch):
                    item = batch[index]
                    end = index + 1
                    token = sql.nowait.set(index > start)
                    try:
                        recorded.append(handle(item))
                    except Exception as exc:  # noqa: BLE001 - one failure must not stop the sweep
                        if retry.is_conflict(exc):
                            raise
                        if index > start and sql.locks_busy(exc):
                            end = index
                            break
                        failed.append((item, exc))
                    finally:
                        sql.nowait.reset(token)
                    index += 1
        except Exception as exc:
            if not (owned and retry.is_conflict(exc)):
                raise
            if attempt < conf.RETRY_ATTEMPTS:
                retry.pause("a sweep's transaction", attempt, conf.RETRY_ATTEMPTS, exc)
                attempt += 1
                continue
            gave_up = RetryableConflict(
                operation="a sweep's transaction",
                attempts=attempt,
                in_transaction=False,
                error=exc,
            )
            for item in batch[start:end]:
                fail(item, gave_up)
            start, attempt = end, 1
            continue
        for record in recorded:
            record()
        for item, error in failed:
            fail(item, error)
        start, attempt = index, 1


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
) -> HoldSweep:
    """Mark every active hold past its expiry as expired, freeing what it reserved.

    ``now`` (default: the current time) is the moment to judge expiry at.
    With ``dry_run`` nothing is written. ``progress`` is called with the
    number of holds looked at so far after each batch.
    """
    now = now or timezone.now()
    result = HoldSweep()
    seen = 0
    using = router.db_for_write(Hold)
    candidates = (
        Hold.objects.using(using).past_expiry(now).only("pk", "source_id", "currency", "amount")
    )

    def handle(hold: Hold) -> Callable[[], None]:
        expired = dry_run or facade.expire_hold(hold, now=now)

        def record() -> None:
            if expired:
                result.expired += 1
                result.freed[hold.currency] = (
                    result.freed.get(hold.currency, Decimal(0)) + hold.amount.amount
                )
            else:
                result.skipped += 1

        return record

    def fail(hold: Hold, exc: Exception) -> None:
        logger.error("Could not expire hold %s", hold.pk, exc_info=exc)
        result.failures.append((hold, exc))

    for batch in batches(candidates, batch_size):
        _run_batch(using, batch, handle, fail)
        seen += len(batch)
        if progress:
            progress(seen)
    return result


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
    whose accounts are then untouched.
    """
    now = now or timezone.now()
    result = AccountSweep()
    seen = 0
    using = router.db_for_write(Account)
    candidates = (
        Account.objects.using(using)
        .expired(now)
        .filter(role__isnull=True)
        .exclude(status=Account.Status.CLOSED)
    )
    sinks: dict[str, Account] = {}

    def handle(account: Account) -> Callable[[], None]:
        if dry_run:
            outcome = _preview(account)
        else:
            if account.currency not in sinks:
                sinks[account.currency] = Account.objects.db_manager(using).expired_account(
                    account.currency
                )
            outcome = facade.expire_account(account, now=now, sink=sinks[account.currency])
        return lambda: _count(result, account, outcome)

    def fail(account: Account, exc: Exception) -> None:
        logger.error("Could not close expired account %s", account.pk, exc_info=exc)
        result.failures.append((account, exc))

    for batch in batches(candidates, batch_size):
        _run_batch(using, batch, handle, fail)
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
