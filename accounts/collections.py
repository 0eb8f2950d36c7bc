"""
Collecting debts: a run per period for the accounts of a scope that owe money.

The cycle, for one scope (an account type, every account, or accounts the
caller gives), one currency and one period::

    run = create_run(account_type=wallets, period_start=..., period_end=...,
                     collect_on=...)                      # idempotent per scope and period
    freeze(run)        # once freeze_at has passed: one Debt per account that owed money
    run_collection(run)               # initiates each pending debt: signal debt_initiated
    settle(debt, amount, reference=...)      # money came back: a transfer into the account
    fail(debt, reason)                       # it did not: owed again in the next run

What a debt owes (:func:`freeze`)
    The account's debt at ``freeze_at`` (minus its balance after its last leg
    at or before that moment, read from the legs' stored running balances:
    one index seek per account), less what other runs' debts of the account
    are still collecting (pending or initiated) and less what they recovered
    after ``freeze_at`` (money the balance at ``freeze_at`` does not show).
    So a debt that failed is owed again in the next run, and a debt is never
    collected twice, whatever order runs are frozen, settled or failed in.
    Money the debtor pays after the freeze does not change the amount: the
    amounts are final at ``freeze_at``, as the debtor was told.

Money that came back (:func:`settle`)
    A transfer of the amount from the run's source account (see
    ``ACCOUNTS_COLLECTION_SOURCES``) into the debtor's account, through
    ``accounts.facade.transfer`` (so every rule of a transfer applies),
    linked to the debt by a ``Settlement`` carrying the external reference.
    Partial amounts are allowed, never more than the debt still owes. The
    external reference is the idempotency key: the same settlement recorded
    again (a payment provider's retried webhook) records nothing more.

Locks, and their order
    Every lock is taken in one global order: **accounts** (in primary-key
    order, as the facade takes them), then **debts**, then the **run**.
    Every write of a debt holds its account's lock first: settling locks the
    source and debtor accounts (``accounts.posting.locked``, the locked path
    of every transfer), then the debt, then its run; failing and initiating
    lock the debtor's account, the debt, then the run. Freezing locks a
    batch of the scope's accounts, then the run. Nothing locks an account
    while holding a debt or a run, or a debt while holding a run, so these
    never wait on each other in a cycle, nor with transfers and holds
    (accounts, then holds) or the sweeps (which never wait while holding a
    lock). Initiating many debts follows the sweeps' batch pattern (only the
    first debt of a transaction waits for its locks, the others take them
    with ``NOWAIT``; see ``accounts.expiry.run_batch``).

    Why the account first, even to fail a debt: MariaDB's foreign key check
    takes a shared lock on the account when a debt's status changes (its
    index leads with the account), so a debt written without its account's
    lock could wait for a settlement that waits for the debt. And why the
    run's source has no foreign key constraint: see ``CollectionRun.source``.

What each decision reads (the trust boundary)
    * a debt's status, amount, what it recovered, its account and run: the
      debt's row, locked (its account, run and currency, which never change,
      are read first to know which accounts to lock);
    * whether a run may be frozen: the database's clock, read under the
      locks, against ``freeze_at`` from the run's locked row;
    * a debt's amount: the legs' stored ``balance_after``, read after the
      account is locked (any transfer stamped at or before ``freeze_at`` has
      committed by then), and the other debts of the account as stored;
    * a repeated external reference: the stored settlement and the
      fingerprint of the request that wrote it;
    * the money moved: ``accounts.facade.transfer``'s own locked decisions.

    The ``CollectionRun`` and ``Debt`` instances passed in are used for their
    primary key only (and get what was written to their rows).
"""

from __future__ import annotations

import csv
import datetime
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, clock, expiry, facade, posting
from .collection_models import CollectionRun, Debt, Settlement
from .conf import conf
from .exceptions import (
    CollectionBeforeFreeze,
    CollectionRunConflict,
    CollectionRunNotDue,
    DebtResolved,
    IdempotencyConflict,
    InvalidArgument,
    InvalidCollectionPeriod,
    InvalidCollectionSource,
    MixedCurrencyScope,
    SettlementExceedsDebt,
)
from .fields import window_bound
from .idempotency import fingerprint
from .models import Account, AccountType, Statement, Transaction, Transfer
from .signals import debt_failed, debt_initiated, debt_settled

if TYPE_CHECKING:
    from djmoney.money import Money

    Amount = Money | Decimal

__all__ = [
    "create_run",
    "scope_currencies",
    "freeze",
    "preview",
    "initiate",
    "run_collection",
    "run_due_collections",
    "settle",
    "fail",
    "debt_statement",
    "DebtStatement",
    "RunReport",
]

logger = logging.getLogger(__name__)

#: Accounts looked at per query (and per transaction) when freezing a run.
FREEZE_BATCH_SIZE = 500
#: Debts initiated per commit (each in its own savepoint), as the sweeps do.
DEFAULT_BATCH_SIZE = expiry.DEFAULT_BATCH_SIZE
#: Longest external reference; the transfer's idempotency key is built from it.
REFERENCE_LENGTH = 100
#: Prefix of the idempotency key of a settlement's transfer.
KEY_PREFIX = "collection:"

PENDING, RUNNING = CollectionRun.Status.PENDING, CollectionRun.Status.RUNNING
OPEN = (Debt.Status.PENDING, Debt.Status.INITIATED)

_MONEY: DecimalField[Decimal, Decimal] = DecimalField(
    max_digits=amounts.MAX_DIGITS, decimal_places=amounts.DECIMAL_PLACES
)


# Creating a run ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """What a run covers, resolved from the caller's arguments."""

    key: str
    #: The scope in words, for messages.
    label: str
    account_type: AccountType | None
    #: The accounts given (a queryset of them), or None for a type or every account.
    given: QuerySet[Account] | None


def _scope(account_type: Any, accounts: Any, name: Any, *, named: bool = True) -> _Scope:
    if account_type is not None and accounts is not None:
        raise InvalidArgument(_("Give account_type or accounts, not both."))
    if accounts is not None:
        if not isinstance(accounts, QuerySet) or accounts.model is not Account:
            raise InvalidArgument(
                _("accounts must be a QuerySet of accounts, got %(accounts)r."), accounts=accounts
            )
        name = arguments.text(name, _("The scope's name"), 150, allow_empty=False)
        if name is None and named:
            raise InvalidArgument(
                _(
                    "A run over the accounts given needs a name (name=...): runs are created "
                    "once per name and period."
                )  # fmt: skip
            )
        return _Scope("accounts:%s" % name, str(name), None, accounts)
    if name is not None:
        raise InvalidArgument(_("name is for a run over the accounts given (accounts=...)."))
    if account_type is None:
        return _Scope("all", str(_("every account")), None, None)
    if isinstance(account_type, str):
        found = AccountType.objects.filter(code=account_type).first()
        if found is None:
            raise InvalidArgument(
                _("There is no account type with code %(code)r."), code=account_type
            )
        account_type = found
    account_type_id = arguments.saved_pk(account_type, AccountType, _("account type"))
    return _Scope(
        "type:%s" % account_type_id,
        str(_("account type %(type)s") % {"type": account_type}),
        account_type,
        None,
    )


def _candidates(using: str, run_or_scope: Any, currency: str | None = None) -> QuerySet[Account]:
    """The accounts a run (or a scope being created) covers: never core accounts."""
    accounts = Account.objects.using(using).filter(role__isnull=True)
    if isinstance(run_or_scope, CollectionRun):
        run = run_or_scope
        accounts = accounts.filter(currency=run.currency).exclude(pk=run.source_id)
        if run.account_type_id is not None:
            ids = AccountType.objects.using(using).descendant_ids([run.account_type_id])
            return accounts.filter(account_type__in=ids)
        if run.scope == "all":
            return accounts
        members = CollectionRun.members.through.objects.using(using).filter(collectionrun=run.pk)
        return accounts.filter(pk__in=members.values("account"))
    scope: _Scope = run_or_scope
    if currency is not None:
        accounts = accounts.filter(currency=currency)
    if scope.account_type is not None:
        ids = AccountType.objects.using(using).descendant_ids([scope.account_type.pk])
        return accounts.filter(account_type__in=ids)
    if scope.given is not None:
        return accounts.filter(pk__in=scope.given.values("pk"))
    return accounts


def scope_currencies(
    *, account_type: AccountType | str | None = None, accounts: QuerySet[Account] | None = None
) -> list[str]:
    """The currencies of the (non-core) accounts of a scope, sorted: a run for each.

    The scope is an account type (or its code; subtypes included), the
    accounts given, or, with neither, every account.
    """
    scope = _scope(account_type, accounts, None, named=False)
    return _currencies(router.db_for_read(CollectionRun), scope)


def scope_key(*, account_type: AccountType | str | None = None, name: str | None = None) -> str:
    """How runs store a scope (``CollectionRun.scope``): ``type:<id>``, ``all`` or
    ``accounts:<name>`` (the accounts given under ``name``)."""
    if name is not None:
        return "accounts:%s" % name
    return _scope(account_type, None, None).key


def _currencies(using: str, scope: _Scope) -> list[str]:
    found = _candidates(using, scope).order_by().values_list("currency", flat=True).distinct()
    return sorted(set(found))


def _moment(value: Any, what: Any, *, end: bool) -> datetime.datetime:
    """A date (a whole day in the current time zone) or a datetime, as a moment."""
    moment = window_bound(value, end=end)
    if not isinstance(moment, datetime.datetime):
        raise InvalidArgument(
            _("%(what)s must be a date or a datetime, got %(value)r."), what=what, value=value
        )
    if timezone.is_naive(moment) == bool(settings.USE_TZ):
        raise InvalidArgument(
            _("%(what)s must be an aware datetime with USE_TZ (naive without), got %(value)r."),
            what=what,
            value=value,
        )
    return moment


def _canonical_moment(moment: datetime.datetime) -> datetime.datetime:
    """The same moment however it was written (time zones), for fingerprints."""
    return moment.astimezone(datetime.UTC) if timezone.is_aware(moment) else moment


def _source(using: str, source: Any, currency: str) -> Account:
    """The account collected money comes from: given, configured, or the core source."""
    if source is None:
        name = (conf.COLLECTION_SOURCES or {}).get(currency)
        if name is None:
            return Account.objects.db_manager(using).source_account(currency)
        found = Account.objects.using(using).filter(name=name).first()
        if found is None:
            raise InvalidCollectionSource(
                reason=_(
                    "ACCOUNTS_COLLECTION_SOURCES names %(name)r for %(currency)s, and no "
                    "account has that name."
                )
                % {"name": name, "currency": currency}
            )
        source = found
    source_id = arguments.account_id(source, _("collection source"))
    found = Account.objects.using(using).filter(pk=source_id).first()
    if found is None:
        raise InvalidCollectionSource(
            reason=_("account %(account)s does not exist.") % {"account": source_id}
        )
    if found.currency != currency:
        raise InvalidCollectionSource(
            reason=_("%(account)s is in %(found)s, the run in %(currency)s.")
            % {"account": found, "found": found.currency, "currency": currency}
        )
    if found.credit_limit is not None:
        raise InvalidCollectionSource(
            reason=_(
                "%(account)s has a credit limit; money comes into the ledger from an "
                "account without one (a source of money)."
            )
            % {"account": found}
        )
    return found


def create_run(
    *,
    period_start: datetime.date | datetime.datetime,
    period_end: datetime.date | datetime.datetime,
    collect_on: datetime.date,
    freeze_at: datetime.datetime | None = None,
    account_type: AccountType | str | None = None,
    accounts: QuerySet[Account] | None = None,
    name: str | None = None,
    currency: str | None = None,
    source: Account | None = None,
) -> CollectionRun:
    """Create the collection run of a scope for a period, or return the one that exists.

    The scope is an ``account_type`` (an ``AccountType`` or its code; its
    subtypes included), the ``accounts`` given (a QuerySet; ``name`` names
    them, and the run keeps the accounts as they are now), or, with neither,
    every account. Core accounts are never collected. Dates mean whole days
    in the current time zone (``period_end``: to its last moment).
    ``freeze_at`` (default: the end of the period) is when the amounts owed
    are taken; ``collect_on``, a date after it, when the money is to be
    taken. ``currency`` defaults to the scope's one currency; ``source``
    (default: ``ACCOUNTS_COLLECTION_SOURCES``, else the core source account)
    is the account recovered money comes from.

    A scope is collected once per period and currency: the same call again
    returns the same run and writes nothing (also when two race); the same
    scope, currency and period with another ``freeze_at``, ``collect_on``,
    source or accounts raises ``CollectionRunConflict``.

    Raises ``InvalidCollectionPeriod`` (the period ends before it starts, or
    the freeze comes before its end), ``CollectionBeforeFreeze``,
    ``MixedCurrencyScope`` (no ``currency`` for a scope in several),
    ``UnsupportedCurrency``, ``InvalidCollectionSource``,
    ``CollectionRunConflict`` and ``InvalidArgument``; nothing is written
    when it raises.
    """
    scope = _scope(account_type, accounts, name)
    start = _moment(period_start, _("period_start"), end=False)
    end = _moment(period_end, _("period_end"), end=True)
    freeze_moment = end if freeze_at is None else _moment(freeze_at, _("freeze_at"), end=True)
    if isinstance(collect_on, datetime.datetime) or not isinstance(collect_on, datetime.date):
        raise InvalidArgument(
            _("collect_on must be a date (the day money is taken), got %(value)r."),
            value=collect_on,
        )
    if end <= start:
        raise InvalidCollectionPeriod(
            reason=_("the period ends (%(end)s) before it starts (%(start)s).")
            % {"end": end, "start": start}
        )
    if freeze_moment < end:
        raise InvalidCollectionPeriod(
            reason=_("freeze_at (%(freeze_at)s) comes before the period ends (%(end)s).")
            % {"freeze_at": freeze_moment, "end": end}
        )
    if window_bound(collect_on, end=True) <= freeze_moment:
        raise CollectionBeforeFreeze(collect_on=collect_on, freeze_at=freeze_moment)
    using = router.db_for_write(CollectionRun)
    if currency is None:
        found = _currencies(using, scope)
        if len(found) > 1:
            raise MixedCurrencyScope(scope=scope.label, currencies=found)
        currency = found[0] if found else conf.DEFAULT_CURRENCY
    currency = amounts.check_currency(currency)
    source_account = _source(using, source, currency)
    member_ids: list[int] = []
    if scope.given is not None:
        member_ids = sorted(_candidates(using, scope, currency).values_list("pk", flat=True))
        member_ids = [pk for pk in member_ids if pk != source_account.pk]
    digest = fingerprint(
        "collection_run",
        scope=scope.key,
        currency=currency,
        period_start=_canonical_moment(start),
        period_end=_canonical_moment(end),
        freeze_at=_canonical_moment(freeze_moment),
        collect_on=collect_on.isoformat(),
        source=source_account.pk,
        members=fingerprint("members", ids=",".join(map(str, member_ids))),
    )
    same_period = CollectionRun.objects.using(using).filter(
        scope=scope.key, currency=currency, period_start=start, period_end=end
    )
    existing = same_period.first()
    if existing is None:
        try:
            with transaction.atomic(using=using):
                created = CollectionRun(
                    scope=scope.key,
                    account_type=scope.account_type,
                    currency=currency,
                    source=source_account,
                    period_start=start,
                    period_end=end,
                    freeze_at=freeze_moment,
                    collect_on=collect_on,
                    request_fingerprint=digest,
                )
                created.save(using=using)
                through = CollectionRun.members.through
                through.objects.using(using).bulk_create(
                    [through(collectionrun_id=created.pk, account_id=pk) for pk in member_ids],
                    batch_size=1000,
                )
            return created
        except IntegrityError:
            # The same run was created concurrently (the unique constraint
            # made this insert wait for it): answer as a repeat would.
            existing = same_period.first()
            if existing is None:
                raise
    if existing.request_fingerprint == digest:
        return existing
    raise CollectionRunConflict(
        existing=existing,
        scope=existing.scope_label,
        currency=currency,
        differences=_differences(existing, freeze_moment, collect_on, source_account),
    )


def _differences(
    existing: CollectionRun, freeze_at: datetime.datetime, collect_on: Any, source: Account
) -> str:
    differences = []
    if existing.freeze_at != freeze_at:
        differences.append("freeze_at (%s, not %s)" % (existing.freeze_at, freeze_at))
    if existing.collect_on != collect_on:
        differences.append("collect_on (%s, not %s)" % (existing.collect_on, collect_on))
    if existing.source_id != source.pk:
        differences.append("source (#%s, not #%s)" % (existing.source_id, source.pk))
    return ", ".join(differences) or "set of accounts"


# Freezing ------------------------------------------------------------------------------


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


def _run_pk(run: Any) -> int:
    return arguments.saved_pk(run, CollectionRun, _("collection run"))


def freeze(
    run: CollectionRun,
    *,
    batch_size: int = FREEZE_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> CollectionRun:
    """Write the run's debts: one per account of its scope that owed money at ``freeze_at``.

    Each debt is the account's debt at ``freeze_at`` less what other runs'
    debts are collecting or recovered since (see the module's docstring). The
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
    run_id = _run_pk(run)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(
            _("The batch size must be a whole number of at least 1, not %(size)r."),
            size=batch_size,
        )
    using = router.db_for_write(CollectionRun)
    stored = CollectionRun.objects.using(using).get(pk=run_id)
    candidates = _candidates(using, stored)
    seen = 0
    while stored.status == PENDING:
        after = stored.frozen_through or 0
        ids = list(
            candidates.filter(pk__gt=after)
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
    _copy_run(stored, run)
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
    run_id = _run_pk(run)
    using = router.db_for_read(CollectionRun)
    stored = CollectionRun.objects.using(using).get(pk=run_id)
    debts = list(Debt.objects.using(using).filter(run=run_id).order_by("pk"))
    if stored.status != PENDING:
        return debts
    after = stored.frozen_through or 0
    for batch in expiry.batches(
        _candidates(using, stored).filter(pk__gt=after).only("pk", "currency"), batch_size
    ):
        currencies = {account.pk: account.currency for account in batch}
        debts += _debts_of(using, stored, list(currencies), currencies)
    return debts


# Initiating ----------------------------------------------------------------------------


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
    _copy_debt(locked, debt)
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
    account_id = account_id or _account_of(using, debt_id)
    with posting.locked(using, [account_id], nowait=nowait) as lock:
        locked = _locked_debt(using, debt_id, nowait=nowait)
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


def _account_of(using: str, debt_id: int) -> int:
    """A debt's account, read by primary key before it is locked (it never changes)."""
    found = Debt.objects.using(using).filter(pk=debt_id).values_list("account_id", flat=True)
    account_id = found.first()
    if account_id is None:
        raise InvalidArgument(_("Debt %(debt)s does not exist."), debt=debt_id)
    return account_id


def _locked_debt(using: str, debt_id: int, *, nowait: bool = False) -> Debt:
    """The debt's row, locked: that row alone (no join, so its run is not locked with it)."""
    found = (
        Debt.objects.using(using)
        .select_for_update(nowait=nowait)
        .filter(pk=debt_id)
        .order_by()
        .first()
    )
    if found is None:
        raise InvalidArgument(_("Debt %(debt)s does not exist."), debt=debt_id)
    return found


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
    run_id = _run_pk(run)
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
    seen = 0
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
    for batch in expiry.batches(pending, batch_size):
        expiry.run_batch(using, batch, handle, fail)
        if report is not None:
            for item in done:
                report(*item)
        done.clear()
        seen += len(batch)
        if progress:
            progress(seen)
    _finish(using, run_id)
    result.run = CollectionRun.objects.using(using).get(pk=run_id)
    _copy_run(result.run, run)
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
        _finish_locked(using, locked, None)


def _finish_locked(using: str, run: CollectionRun, now: datetime.datetime | None) -> None:
    """Under the run's lock: succeeded or failed once no debt is open any more."""
    if run.status != RUNNING:
        return
    debts = Debt.objects.using(using).filter(run=run.pk)
    if debts.filter(status__in=OPEN).exists():
        return
    failed = debts.filter(status=Debt.Status.FAILED).exists()
    status = CollectionRun.Status.FAILED if failed else CollectionRun.Status.SUCCEEDED
    moment = now or clock.database_now(using)
    CollectionRun.objects.using(using)._write(run.pk, status=status, finished_at=moment)
    run.status, run.finished_at = status, moment


# Settling and failing ------------------------------------------------------------------


def settle(
    debt: Debt,
    amount: Amount,
    *,
    reference: str,
    user: Any = None,
    description: str | None = None,
) -> Transfer:
    """Record money that came back for a debt, and return the transfer that recorded it.

    Moves ``amount`` (a ``Money``, or a ``Decimal`` in the debt's currency)
    from the run's source account into the debtor's account with
    ``accounts.facade.transfer`` (``merchant_reference`` is ``reference``),
    and adds it to what the debt recovered. Less than the debt still owes is
    a partial settlement: the debt stays open (initiated) for the rest; the
    whole of it makes the debt succeeded. ``reference`` is the payment's
    external reference (at most 100 characters, unique): recording the same
    settlement again returns the same transfer and writes nothing; the same
    reference with any other argument, or for another debt, raises
    ``IdempotencyConflict``. ``debt_settled`` is sent once committed.

    Decided under the locks of the source and debtor accounts, then the
    debt, then its run, in one atomic block. Raises ``DebtResolved`` (the
    debt succeeded or failed already), ``SettlementExceedsDebt``,
    ``IdempotencyConflict``, ``InvalidAmount``, ``CurrencyMismatch``,
    ``InvalidArgument`` and whatever ``facade.transfer`` raises (an account
    closed or frozen, say); nothing is written when it raises.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    value, currency = amounts.parse_amount(amount)
    reference = arguments.text(
        reference, _("External reference"), REFERENCE_LENGTH, allow_empty=False
    )
    if reference is None:
        raise InvalidArgument(_("A settlement needs its external reference (reference=...)."))
    description = arguments.text(description, _("Description"), None)
    saved_user = arguments.saved_user(user)
    using = router.db_for_write(Debt)
    facts = (
        Debt.objects.using(using)
        .filter(pk=debt_id)
        .values_list("account_id", "run__source_id", "run__reference")
        .first()
    )
    if facts is None:
        raise InvalidArgument(_("Debt %(debt)s does not exist."), debt=debt_id)
    account_id, source_id, run_reference = facts
    digest = fingerprint(
        "settle",
        debt=debt_id,
        amount=value,
        currency=currency,
        user=saved_user.pk if saved_user is not None else None,
        description=description,
    )
    key = KEY_PREFIX + reference
    with posting.locked(using, [source_id, account_id]):
        locked = _locked_debt(using, debt_id)
        existing = Settlement.objects.using(using).filter(reference=reference).first()
        if existing is not None:
            if existing.debt_id == debt_id and existing.request_fingerprint == digest:
                _copy_debt(locked, debt)
                return Transfer.objects.using(using).get(pk=existing.transfer_id)
            raise IdempotencyConflict(key=reference, existing=existing.transfer)
        taken = Transfer.objects.using(using).filter(idempotency_key=key).first()
        if taken is not None:
            raise IdempotencyConflict(key=reference, existing=taken)
        if locked.status not in OPEN:
            raise DebtResolved(debt=locked, status=locked.get_status_display().lower())
        amounts.check_same_currency(currency, locked.currency, what=_("The amount"))
        amounts.check_places(value, locked.currency)
        owed, recovered = posting.amount(locked, "amount"), posting.amount(locked, "recovered")
        if value > owed - recovered:
            raise SettlementExceedsDebt(
                debt=locked,
                amount=amounts.money(value, locked.currency),
                remaining=amounts.money(owed - recovered, locked.currency),
            )
        recorded = facade.transfer(
            source_id,
            account_id,
            value,
            user=saved_user,
            merchant_reference=reference,
            description=description
            or str(
                _("Collected for debt #%(debt)s (collection run %(run)s)")
                % {"debt": debt_id, "run": run_reference}
            ),
            idempotency_key=key,
        )
        now = recorded.created  # the moment the money came in
        new_recovered = recovered + value
        status = Debt.Status.SUCCEEDED if new_recovered == owed else Debt.Status.INITIATED
        columns: dict[str, Any] = {
            "status": status,
            "recovered": new_recovered,
            "external_reference": reference,
            "resolved_by": posting.username(saved_user),
            "resolved_at": now if status == Debt.Status.SUCCEEDED else None,
        }
        if locked.status == Debt.Status.PENDING:
            columns["initiated_at"] = now
        run = CollectionRun.objects.using(using).select_for_update().get(pk=locked.run_id)
        initiated = posting.amount(run, "total_initiated")
        if locked.status == Debt.Status.INITIATED:
            initiated -= value
        elif status == Debt.Status.INITIATED:
            initiated += owed - new_recovered  # partly settled before it was initiated
        Settlement(
            debt_id=debt_id,
            transfer=recorded,
            reference=reference,
            request_fingerprint=digest,
            created=now,
        )._record(using)
        Debt.objects.using(using)._write(debt_id, **columns)
        CollectionRun.objects.using(using)._write(
            run.pk,
            total_initiated=initiated,
            total_recovered=posting.amount(run, "total_recovered") + value,
        )
        for name, value_written in columns.items():
            setattr(locked, name, value_written)
        _finish_locked(using, run, now)
        posting.after_commit(using, debt_settled, Debt, debt=locked, transfer=recorded)
    _copy_debt(locked, debt)
    return recorded


def fail(debt: Debt, reason: str, *, user: Any = None) -> Debt:
    """Mark an open debt failed: what it still owes is owed again in the next run.

    ``reason`` (required) says why, e.g. the payment provider's return
    code. A debt partly settled keeps what it recovered. ``debt_failed`` is
    sent once committed. Decided under the locks of the debt's account, the
    debt, then its run.
    Raises ``DebtResolved`` (it succeeded or failed already) and
    ``InvalidArgument``; nothing is written when it raises. Returns the
    debt passed in, with its new status.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    reason = arguments.text(reason, _("Failure reason"), None, allow_empty=False)
    if reason is None or not reason.strip():
        raise InvalidArgument(_("A failed debt needs its reason (reason=...)."))
    saved_user = arguments.saved_user(user)
    using = router.db_for_write(Debt)
    with posting.locked(using, [_account_of(using, debt_id)]) as lock:
        locked = _locked_debt(using, debt_id)
        if locked.status not in OPEN:
            raise DebtResolved(debt=locked, status=locked.get_status_display().lower())
        now = lock.now
        left = posting.amount(locked, "amount") - posting.amount(locked, "recovered")
        columns = {
            "status": Debt.Status.FAILED,
            "failure_reason": reason,
            "resolved_at": now,
            "resolved_by": posting.username(saved_user),
        }
        run = CollectionRun.objects.using(using).select_for_update().get(pk=locked.run_id)
        initiated = posting.amount(run, "total_initiated")
        if locked.status == Debt.Status.INITIATED:
            initiated -= left
        Debt.objects.using(using)._write(debt_id, **columns)
        CollectionRun.objects.using(using)._write(
            run.pk,
            total_initiated=initiated,
            total_failed=posting.amount(run, "total_failed") + left,
        )
        for name, value in columns.items():
            setattr(locked, name, value)
        _finish_locked(using, run, now)
        posting.after_commit(using, debt_failed, Debt, debt=locked)
    _copy_debt(locked, debt)
    return debt


def _copy_debt(locked: Debt, debt: Any) -> None:
    if isinstance(debt, Debt) and debt is not locked:
        for name in (
            "status",
            "recovered",
            "external_reference",
            "failure_reason",
            "initiated_at",
            "resolved_at",
            "resolved_by",
        ):
            debt.__dict__[name] = locked.__dict__[name]


def _copy_run(stored: CollectionRun, run: Any) -> None:
    if isinstance(run, CollectionRun) and run is not stored:
        for f in CollectionRun._meta.concrete_fields:
            run.__dict__[f.attname] = stored.__dict__[f.attname]


# The statement of a debt ---------------------------------------------------------------


@dataclass
class DebtStatement:
    """A debt and the account's history that made it up (see :func:`debt_statement`)."""

    debt: Debt
    run: CollectionRun
    account: Account
    #: The account's legs from the period's start to the freeze, oldest first,
    #: with the balances before and after them.
    statement: Statement

    @property
    def opening_balance(self) -> Any:
        return self.statement.opening_balance

    @property
    def closing_balance(self) -> Any:
        """The balance at the freeze: minus it is the account's debt then."""
        return self.statement.closing_balance

    @property
    def transactions(self) -> Any:
        return self.statement.transactions

    def rows(self) -> Iterator[list[Any]]:
        """The statement as rows for a CSV file, a header row first (see :meth:`write_csv`)."""
        debt, run = self.debt, self.run
        yield [
            "line",
            "date",
            "transfer",
            "counterparty",
            "description",
            "merchant_reference",
            "amount",
            "balance_after",
            "currency",
        ]
        currency = debt.currency
        start = self.statement.start or run.period_start
        yield ["opening balance", _iso(start), "", "", "", "", "", _plain(self.opening_balance),
               currency]  # fmt: skip
        legs = self.transactions.select_related(
            "transfer__source", "transfer__destination"
        ).iterator(chunk_size=500)
        for leg in legs:
            transfer = leg.transfer
            mine = transfer.source_id == leg.account_id
            other = transfer.destination if mine else transfer.source
            yield [
                "transaction",
                _iso(leg.created),
                transfer.reference,
                _text(str(other)),
                _text(transfer.description),
                _text(transfer.merchant_reference or ""),
                _plain(leg.amount),
                _plain(leg.balance_after),
                currency,
            ]
        yield ["closing balance", _iso(run.freeze_at), "", "", "", "", "",
               _plain(self.closing_balance), currency]  # fmt: skip
        for line, value in (
            ("debt at the freeze", debt.debt_at_freeze),
            ("collected by other runs", debt.claimed_elsewhere),
            ("owed in this run", debt.amount),
            ("recovered", debt.recovered),
            ("still owed", debt.remaining),
        ):
            yield [line, "", "", "", "", "", _plain(value), "", currency]

    def write_csv(self, out: Any) -> None:
        """Write :meth:`rows` as CSV to ``out`` (a text file)."""
        writer = csv.writer(out)
        for row in self.rows():
            writer.writerow(row)


def _iso(moment: Any) -> str:
    if moment is None:
        return ""
    if isinstance(moment, datetime.datetime) and timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.isoformat()


def _plain(value: Any) -> str:
    return "" if value is None else str(getattr(value, "amount", value))


#: What a spreadsheet would run as a formula at the start of a cell.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """Text from people (names, descriptions) as a spreadsheet shows it, never as a formula."""
    return "'" + value if value.startswith(_FORMULA) else value


def debt_statement(debt: Debt) -> DebtStatement:
    """The statement of a debt: the account's legs of the run's period, up to the freeze.

    From the start of the period to ``freeze_at``, with the balance before
    the first (opening) and after the last (closing, minus which is the
    account's debt at the freeze). Three indexed queries, as
    ``Account.statement``, plus the debt's, whatever the account's history.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    using = router.db_for_read(Debt)
    stored = Debt.objects.using(using).select_related("run", "account").get(pk=debt_id)
    account, run = stored.account, stored.run
    return DebtStatement(
        debt=stored,
        run=run,
        account=account,
        statement=account.statement(run.period_start, run.freeze_at),
    )
