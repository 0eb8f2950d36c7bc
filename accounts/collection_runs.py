"""
Collection runs: their scope, creating them, and what every step of a run shares.

The design of collecting debts (the cycle, the locks and their order, what
each decision reads) is described in :mod:`accounts.collections`, the public
import path; this module creates runs and holds the helpers the other steps
(``collection_freeze``, ``collection_initiate``, ``collection_settlement``)
use: locking a debt, finishing a run, copying what was written back to the
caller's instances.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, clock
from .collection_models import CollectionRun, Debt
from .conf import conf
from .exceptions import (
    CollectionBeforeFreeze,
    CollectionRunConflict,
    InvalidArgument,
    InvalidCollectionPeriod,
    InvalidCollectionSource,
    MixedCurrencyScope,
)
from .fields import window_bound
from .idempotency import fingerprint
from .models import Account, AccountType
from .retry import retry_on_conflict

if TYPE_CHECKING:
    from .exceptions import StrOrPromise

__all__ = ["create_run", "scope_currencies", "scope_key"]

PENDING, RUNNING = CollectionRun.Status.PENDING, CollectionRun.Status.RUNNING
OPEN = (Debt.Status.PENDING, Debt.Status.INITIATED)


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


def _scope(
    account_type: AccountType | str | None, accounts: object, name: object, *, named: bool = True
) -> _Scope:
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
        found: AccountType | None = AccountType.objects.filter(code=account_type).first()
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


def candidates(
    using: str, run_or_scope: CollectionRun | _Scope, currency: str | None = None
) -> QuerySet[Account]:
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
    # The write database: which currencies get a run is decided here, and a
    # replica may not have replayed a currency's first account yet.
    return _currencies(router.db_for_write(CollectionRun), scope)


def scope_key(*, account_type: AccountType | str | None = None, name: str | None = None) -> str:
    """How runs store a scope (``CollectionRun.scope``): ``type:<id>``, ``all`` or
    ``accounts:<name>`` (the accounts given under ``name``)."""
    if name is not None:
        return "accounts:%s" % name
    return _scope(account_type, None, None).key


def _currencies(using: str, scope: _Scope) -> list[str]:
    found = candidates(using, scope).order_by().values_list("currency", flat=True).distinct()
    return sorted(set(found))


def _moment(value: object, what: StrOrPromise, *, end: bool) -> datetime.datetime:
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


def _source(using: str, source: Account | None, currency: str) -> Account:
    """The account collected money comes from: given, configured, or the core source."""
    if source is None:
        name = (conf.COLLECTION_SOURCES or {}).get(currency)
        if name is None:
            return Account.objects.db_manager(using).source_account(currency)
        found: Account | None = Account.objects.using(using).filter(name=name).first()
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
    account: Account | None = Account.objects.using(using).filter(pk=source_id).first()
    if account is None:
        raise InvalidCollectionSource(
            reason=_("account %(account)s does not exist.") % {"account": source_id}
        )
    if account.currency != currency:
        raise InvalidCollectionSource(
            reason=_("%(account)s is in %(found)s, the run in %(currency)s.")
            % {"account": account, "found": account.currency, "currency": currency}
        )
    if account.credit_limit is not None:
        raise InvalidCollectionSource(
            reason=_(
                "%(account)s has a credit limit; money comes into the ledger from an "
                "account without one (a source of money)."
            )
            % {"account": account}
        )
    return account


@retry_on_conflict
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
        member_ids = sorted(candidates(using, scope, currency).values_list("pk", flat=True))
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
    existing: CollectionRun,
    freeze_at: datetime.datetime,
    collect_on: datetime.date,
    source: Account,
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
# Shared by every step of a run ---------------------------------------------------------


def run_pk(run: object) -> int:
    """The primary key of a saved ``CollectionRun`` (``InvalidArgument`` otherwise)."""
    return arguments.saved_pk(run, CollectionRun, _("collection run"))


def account_of(using: str, debt_id: int) -> int:
    """A debt's account, read by primary key before it is locked (it never changes)."""
    found = Debt.objects.using(using).filter(pk=debt_id).values_list("account_id", flat=True)
    account_id = found.first()
    if account_id is None:
        raise InvalidArgument(_("Debt %(debt)s does not exist."), debt=debt_id)
    return account_id


def locked_debt(using: str, debt_id: int, *, nowait: bool = False) -> Debt:
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


def finish_locked(using: str, run: CollectionRun, now: datetime.datetime | None) -> None:
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


def copy_debt(locked: Debt, debt: object) -> None:
    """Give the caller's ``Debt`` (if it passed one) what was written to the locked row."""
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


def copy_run(stored: CollectionRun, run: object) -> None:
    """Give the caller's ``CollectionRun`` (if it passed one) the stored row's columns."""
    if isinstance(run, CollectionRun) and run is not stored:
        for f in CollectionRun._meta.concrete_fields:
            run.__dict__[f.attname] = stored.__dict__[f.attname]
