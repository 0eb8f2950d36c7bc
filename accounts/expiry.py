"""
Expiry, all of it: holds past their expiry, and accounts past their end date.

:func:`release_expired_holds` and :func:`close_expired_accounts` are the
sweeps run from cron (or Celery). Each item is handled in its own atomic
block, through the locked path (``accounts.holds.expire``,
:func:`expire_account`), and re-checked under the lock at the database's
time: two sweeps running at once handle each item once, and a crash leaves
every item either done or untouched, for the next run to finish. Items are
read in primary-key batches, so memory stays bounded however many there
are; the atomic blocks of one batch are savepoints committed together,
because a commit (a WAL flush) per item would be most of the sweep's time.

A transaction that handles several items keeps every lock it took until it
commits, so the sweeps take their locks differently from the facade's
callers: only the first item of a transaction waits for its rows; later
ones lock with ``NOWAIT``, and an item whose rows another transaction holds
ends the transaction (committing the items before it) and starts the next
one. A sweep therefore never waits while holding a lock, and cannot close a
cycle with a transfer, whatever order its items come in.

What happens to an expired account is decided by one function,
:func:`decide`, on the row as read for a dry run and on the locked row for
the real one.

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

from . import amounts, arguments, holds, limits, posting, retry, rules, sql
from .conf import conf
from .exceptions import InvalidAccount, InvalidArgument, RetryableConflict
from .models import Account, Hold, Transfer

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

logger = logging.getLogger(__name__)

#: Rows read per query, and handled per commit (each row in its own savepoint).
DEFAULT_BATCH_SIZE = 100

#: What expiry does with an account (``Expiry.outcome``).
SWEPT, CLOSED, DEBT, FROZEN, SKIPPED = "swept", "closed", "debt", "frozen", "skipped"


def batches(queryset: QuerySet[Any], batch_size: int) -> Iterator[list[Any]]:
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


def run_batch(
    using: str,
    batch: list[Item],
    handle: Callable[[Item, bool], Callable[[], None]],
    fail: Callable[[Item, Exception], None],
) -> None:
    """Call ``handle(item, nowait)`` on each item, committing once per batch where locks allow.

    ``handle`` runs each item in its own atomic block (the locked path's), so
    here it is a savepoint, and returns what to record once the item is
    committed. The first item of each transaction may wait for its locks
    (``nowait=False``); the others lock with ``NOWAIT``: if their rows are
    busy, the transaction commits what it has done and the item starts the
    next one, where waiting is safe because nothing else is held. Any other
    exception goes to ``fail`` (logged there), and the batch goes on.

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
                    try:
                        recorded.append(handle(item, index > start))
                    except Exception as exc:  # noqa: BLE001 - one failure must not stop the sweep
                        if retry.is_conflict(exc):
                            raise
                        if index > start and sql.locks_busy(exc):
                            end = index
                            break
                        failed.append((item, exc))
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


def sweep(
    using: str,
    queryset: QuerySet[Any],
    batch_size: int,
    handle: Callable[[Item, bool], Callable[[], None]],
    fail: Callable[[Item, Exception], None],
    *,
    done: list[tuple[Item, Outcome]],
    report: Callable[[Item, Outcome], None] | None,
    progress: Callable[[int], None] | None,
) -> None:
    """:func:`run_batch` over the queryset's rows, :func:`batches` of ``batch_size`` at a time.

    ``handle``'s records append to ``done`` what each item came to; after
    each batch has committed, each of them goes to ``report`` and is then
    forgotten (memory stays flat), and ``progress`` gets the number of rows
    looked at so far.
    """
    seen = 0
    for batch in batches(queryset, batch_size):
        run_batch(using, batch, handle, fail)
        if report is not None:
            for item, outcome in done:
                report(item, outcome)
        done.clear()
        seen += len(batch)
        if progress:
            progress(seen)


# Holds -------------------------------------------------------------------------------


@dataclass
class HoldSweep:
    """What ``release_expired_holds`` did (or, with ``dry_run``, would do)."""

    expired: int = 0
    #: Amount freed, per currency.
    freed: dict[str, Decimal] = field(default_factory=dict)
    #: Holds another process resolved first (nothing done here).
    skipped: int = 0
    failures: list[tuple[Hold, Exception]] = field(default_factory=list)


@retry.retry_on_conflict
def release_expired_holds(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Hold, bool], None] | None = None,
) -> HoldSweep:
    """Mark every active hold past its expiry as expired, freeing what it reserved.

    ``now`` (default: the current time) is the moment to judge expiry at;
    under each hold's lock it is capped by the database's clock. With
    ``dry_run`` nothing is written. ``progress`` is called with the number
    of holds looked at so far after each batch; ``report(hold, expired)``
    with each hold once its batch is committed (``expired`` is False for a
    hold another process resolved first).
    """
    using = router.db_for_write(Hold)
    now = now or timezone.now()
    result = HoldSweep()
    candidates = (
        Hold.objects.using(using)
        .past_expiry(now)
        .only("pk", "reference", "source_id", "currency", "amount")
    )
    done: list[tuple[Hold, bool]] = []

    def handle(hold: Hold, nowait: bool) -> Callable[[], None]:
        expired = dry_run or holds.expire(using, hold.pk, cutoff=now, nowait=nowait) is not None

        def record() -> None:
            if expired:
                result.expired += 1
                amount = hold.amount.amount  # in the currency's own decimal places
                result.freed[hold.currency] = result.freed.get(hold.currency, Decimal(0)) + amount
            else:
                result.skipped += 1
            done.append((hold, expired))

        return record

    def fail(hold: Hold, exc: Exception) -> None:
        logger.error("Could not expire hold %s", hold.pk, exc_info=exc)
        result.failures.append((hold, exc))

    sweep(using, candidates, batch_size, handle, fail, done=done, report=report, progress=progress)
    return result


# Accounts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    """What :func:`expire_account` did with one account (or would do, in a dry run)."""

    #: "swept" (balance moved, closed), "closed" (zero balance, closed),
    #: "debt" (negative balance: left open, its holds lapsed), "frozen" (left
    #: alone), or "skipped" (closed, core or no longer expired when checked
    #: under the lock).
    outcome: str
    #: The balance moved ("swept") or owed ("debt").
    amount: Any = None
    #: Active holds that lapsed with the account.
    holds_expired: int = 0
    transfer: Transfer | None = None


def decide(account: Account, cutoff: datetime) -> str:
    """What expiry does with ``account`` at ``cutoff``: one of the ``Expiry`` outcomes."""
    if account.role or account.status == rules.CLOSED:
        return SKIPPED
    if not (account.end_date and account.end_date < cutoff):
        return SKIPPED
    if account.status == rules.FROZEN:
        return FROZEN
    balance = posting.amount(account, "balance")
    if balance < 0:
        return DEBT
    return SWEPT if balance > 0 else CLOSED


def expire_account(
    account: Account | int,
    *,
    now: datetime | None = None,
    description: str | None = None,
    sink: Account | None = None,
    nowait: bool = False,
) -> Expiry:
    """Close one account whose end date has passed; see ``facade.expire_account``."""
    account_id = arguments.account_id(account, _("expired"))
    using = router.db_for_write(Account)
    currency = (
        Account.objects.using(using).filter(pk=account_id).values_list("currency", flat=True)
    ).first()
    if currency is None:
        raise InvalidAccount(
            _("Account %(account)s does not exist (was it deleted?)."), account=account_id
        )
    if sink is None:
        sink = Account.objects.db_manager(using).expired_account(currency)
    sink_id = arguments.account_id(sink, _("expired"))
    with posting.locked(using, [account_id, sink_id], nowait=nowait) as lock:
        cutoff = lock.now if now is None else min(now, lock.now)
        locked, expired = lock.rows[account_id], lock.rows[sink_id]
        if expired.role != Account.Role.EXPIRED:
            raise InvalidArgument(
                _("Account %(account)s is not an expired core account."), account=expired
            )
        outcome = decide(locked, cutoff)
        if outcome == SKIPPED or locked.currency != expired.currency:
            return Expiry(SKIPPED)
        if outcome == FROZEN:
            return Expiry(FROZEN)
        lapsed = posting.lapse_holds(using, locked, lock.now, past_expiry=False, nowait=nowait)
        balance = posting.amount(locked, "balance")
        swept = None
        if outcome == DEBT:
            if lapsed:
                posting.write_accounts(
                    using, {account_id: {"held": Decimal(0), **limits.changed(locked)}}
                )
        elif outcome == SWEPT:
            rules.check_pair(locked, expired, None, lock.now, skip_window=True)
            # The sweep and the close are one statement: the account's row
            # gets its zero balance and its closed status together.
            swept = posting.write_transfer(
                using,
                locked,
                expired,
                balance,
                lock.now,
                description=description
                or str(
                    _("Balance of expired account %(account)s (expired %(end)s)")
                    % {"account": locked, "end": locked.end_date.isoformat()}
                ),
                source_columns={"status": rules.CLOSED, "held": Decimal(0)},
            )
        else:
            closed = {"status": rules.CLOSED, "held": Decimal(0), **limits.changed(locked)}
            posting.write_accounts(using, {account_id: closed})
            locked.__dict__.update(closed)
    posting.update_instances(lock.rows, account)
    amount = amounts.money(balance, currency) if outcome in (SWEPT, DEBT) else None
    return Expiry(outcome, amount=amount, holds_expired=lapsed, transfer=swept)


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


@retry.retry_on_conflict
def close_expired_accounts(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    report: Callable[[Account, Expiry], None] | None = None,
) -> AccountSweep:
    """Close every account whose end date is before ``now``, sweeping its money away.

    A positive balance moves to the expired core account of the account's
    currency, then the account is closed (:func:`expire_account`, one
    atomic block per account). Zero balances are just closed. Negative
    balances (unpaid credit) are reported in ``in_debt`` and left open;
    frozen accounts are reported and left alone; core accounts never expire.
    One account failing does not stop the others; it is in ``failures``.
    Running it again changes nothing that is already done. ``now`` is capped
    by the database's clock under each account's lock; a dry run judges
    each account as read, at ``now``, and writes (and creates) nothing.
    ``report(account, outcome)`` is called with each account once its batch
    is committed.
    """
    using = router.db_for_write(Account)
    now = now or timezone.now()
    result = AccountSweep()
    candidates = (
        Account.objects.using(using)
        .expired(now)
        .filter(role__isnull=True)
        .exclude(status=Account.Status.CLOSED)
    )
    sinks: dict[str, Account] = {}
    done: list[tuple[Account, Expiry]] = []

    def handle(account: Account, nowait: bool) -> Callable[[], None]:
        if dry_run:
            decided = decide(account, now)
            amount = account.balance if decided in (SWEPT, DEBT) else None
            outcome = Expiry(decided, amount=amount)
        else:
            if account.currency not in sinks:
                sinks[account.currency] = Account.objects.db_manager(using).expired_account(
                    account.currency
                )
            sink = sinks[account.currency]
            outcome = expire_account(account, now=now, sink=sink, nowait=nowait)

        def record() -> None:
            _count(result, account, outcome)
            done.append((account, outcome))

        return record

    def fail(account: Account, exc: Exception) -> None:
        logger.error("Could not close expired account %s", account.pk, exc_info=exc)
        result.failures.append((account, exc))

    sweep(using, candidates, batch_size, handle, fail, done=done, report=report, progress=progress)
    return result


def _count(result: AccountSweep, account: Account, outcome: Expiry) -> None:
    result.holds_expired += outcome.holds_expired
    if outcome.outcome == SWEPT:
        result.closed += 1
        result.swept_accounts += 1
        currency = outcome.amount.currency.code
        result.swept[currency] = result.swept.get(currency, Decimal(0)) + outcome.amount.amount
    elif outcome.outcome == CLOSED:
        result.closed += 1
    elif outcome.outcome == DEBT:
        result.in_debt.append((account, outcome.amount))
    elif outcome.outcome == FROZEN:
        result.frozen.append(account)
    else:
        result.skipped += 1
