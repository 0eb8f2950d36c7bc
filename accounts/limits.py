"""
Spending limits: how much an account may spend in a day, a week and a month.

What counts, per account (core accounts are never counted or limited):

* a transfer out of the account, when it is posted: not a reversal, not the
  capture of a hold (the hold counted), not money swept to the expired
  account;
* a hold on the account, when it is placed, for its whole amount;
* given back, to a period that is still running: what a hold had not
  captured when it is captured, released or expires (in the period it was
  placed in), and what a reversal moves back into the account (in the
  period the reversed debit counted in: its posting, or its hold's placing).

Periods are calendar days, ISO weeks (Monday to Sunday) and months in
``ACCOUNTS_TIME_ZONE`` (default: Django's ``TIME_ZONE``), each named by its
first day. The usage is stored on the account's row, one amount and one
first day per period (``spent_day`` and ``spent_day_from``, ...), and
written in the same statement as the balance, under the row lock: a debit
costs no read of the account's history, whatever its length. A stored
amount whose first day is not the current period's is a past period's, and
counts as zero.

What it decides on, and where it reads it (the trust boundary): the limits
(``SpendingLimit`` rows, the account's own over its type's), read in the
statement that locks the account; the stored usage, on the locked row; the
time, the database's clock read with the locks; a hold's or reversed
transfer's moment of counting, its stored ``created``.

Rejected alternatives: summing the period's transfers and holds on each
debit (a cost that grows with the account's activity, and a range read
that would need locking); a separate usage table (one more read and one
more write per debit); copying the limits onto the accounts (a type's new
limit would have to rewrite every account of the type, and the copies can
drift from the limits).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from . import amounts, clock
from .conf import conf
from .exceptions import SpendingLimitExceeded

if TYPE_CHECKING:
    from .models import Account

#: The periods, shortest first (the order refusals are reported in on a tie).
PERIODS = ("day", "week", "month")

#: Each period's stored usage: the amount spent, and the period's first day.
COLUMNS = {period: ("spent_%s" % period, "spent_%s_from" % period) for period in PERIODS}

#: COLUMNS as (period, amount column, first-day column).
_COLUMN_TRIPLES = tuple((period, *pair) for period, pair in COLUMNS.items())
_ZERO = Decimal(0)

#: Every usage column of an account.
USAGE_COLUMNS = tuple(name for pair in COLUMNS.values() for name in pair)

#: The most a stored usage counts to (the largest amount below the ledger's
#: limit): past it, every limit is reached anyway.
USAGE_CAP = amounts.LIMIT - Decimal("0.0001")

#: A locked account's limits by period (only the periods that have one).
Limits = dict[str, Decimal]


@dataclass(frozen=True)
class Spending:
    """One period's spending limit of an account, as ``Account.spending()`` returns it."""

    #: ``SpendingLimit.Period``: "day", "week" or "month".
    period: str
    #: The limit (the account's own, or its type's), in the account's currency.
    limit: Any
    #: What the account spent in the period so far (holds count when placed).
    used: Any
    #: What it may still spend in the period: the limit less what it used, never below zero.
    available: Any
    #: The first day of the period, in ``ACCOUNTS_TIME_ZONE``.
    starts: datetime.date
    #: When the next period starts (the limit applies afresh).
    resets_at: datetime.datetime


# Periods ------------------------------------------------------------------------------


def zone() -> datetime.tzinfo:
    """The time zone periods are calendar periods in (``ACCOUNTS_TIME_ZONE``)."""
    return ZoneInfo(conf.TIME_ZONE)


def local_date(moment: datetime.datetime) -> datetime.date:
    """The day ``moment`` falls on in ``ACCOUNTS_TIME_ZONE``."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment.astimezone(zone()).date()


def starts(moment: datetime.datetime) -> Mapping[str, datetime.date]:
    """The first day of the day, week and month ``moment`` falls in."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return _starts(moment, conf.TIME_ZONE)


@functools.lru_cache(maxsize=256)
def _starts(moment: datetime.datetime, zone_name: str) -> Mapping[str, datetime.date]:
    # Cached: a batch asks for the same moment once per transfer. Aware
    # moments only, with the zone's name: the answer depends on nothing else.
    day = moment.astimezone(ZoneInfo(zone_name)).date()
    return MappingProxyType(
        {
            "day": day,
            "week": day - datetime.timedelta(days=day.weekday()),
            "month": day.replace(day=1),
        }
    )


def next_start(period: str, first: datetime.date) -> datetime.date:
    """The first day of the period after the one starting on ``first``."""
    if period == "day":
        return first + datetime.timedelta(days=1)
    if period == "week":
        return first + datetime.timedelta(days=7)
    return (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def instant(day: datetime.date) -> datetime.datetime:
    """The first moment of ``day`` in ``ACCOUNTS_TIME_ZONE``, as the ledger stores moments.

    Aware and in UTC (naive in the default time zone when ``USE_TZ`` is
    off). Where a day has no midnight (a clock change at 00:00) it starts
    at the change.
    """
    local = datetime.datetime.combine(day, datetime.time(0), tzinfo=zone())
    moment = local.astimezone(datetime.UTC)
    if not settings.USE_TZ:
        return timezone.make_naive(moment, timezone.get_default_timezone())
    return moment


def bounds(period: str, first: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The moments the period starting on ``first`` begins and ends (exclusive)."""
    return instant(first), instant(next_start(period, first))


# A locked account's usage --------------------------------------------------------------


def tracked(row: Account) -> bool:
    """Whether the account's spending is counted (every account but the core ones)."""
    return not row.role


def counts(src: Account, dst: Account) -> bool:
    """Whether a plain transfer between these locked rows counts as the source spending.

    Not from a core account, and not into the expired account (an expired
    account's balance swept away is not spent).
    """
    return tracked(src) and dst.role != "expired"


def may_give_back(counted_at: datetime.datetime, now: datetime.datetime) -> bool:
    """Whether something counted at ``counted_at`` is in a period still running now."""
    current = starts(now)
    return local_date(counted_at) >= min(current["week"], current["month"])


def used(
    row: Account, now: datetime.datetime, current: Mapping[str, datetime.date] | None = None
) -> dict[str, Decimal]:
    """What the account spent in each current period, from its stored usage.

    ``current``: ``starts(now)``, when the caller has it already.
    """
    if current is None:
        current = starts(now)
    return {
        period: _spent_since(row, amount_column, from_column, current[period])
        for period, amount_column, from_column in _COLUMN_TRIPLES
    }


def _spent_since(row: Account, amount_column: str, from_column: str, start: Any) -> Decimal:
    """One period's stored usage, if it counts from ``start`` (the current period); else 0."""
    if row.__dict__.get(from_column) != start:
        return _ZERO
    return amounts.raw(row, amount_column) or _ZERO


def _available(limit: Decimal, spent: Decimal, currency: str) -> Decimal:
    """What a limit still allows: never below zero, in the currency's smallest unit."""
    step = Decimal(1).scaleb(-amounts.currency_places(currency))
    left = (limit - spent).quantize(step, rounding=ROUND_FLOOR)
    return max(left, Decimal(0))


def binding(
    row: Account, limits: Limits, now: datetime.datetime
) -> tuple[str, Decimal, Decimal, Decimal] | None:
    """The limit allowing the least now: (period, limit, used, available); ``None``: none."""
    if not limits or not tracked(row):
        return None
    spent = used(row, now)
    least = None
    for period in PERIODS:
        if period not in limits:
            continue
        left = _available(limits[period], spent[period], row.currency)
        if least is None or left < least[3]:
            least = (period, limits[period], spent[period], left)
    return least


def check(
    row: Account,
    limits: Limits,
    value: Decimal,
    now: datetime.datetime,
    *,
    allow_partial: bool = False,
) -> Decimal:
    """Return what the account may spend of ``value`` now; raise ``SpendingLimitExceeded``.

    ``allow_partial`` stops at the limit: the least any limit still allows,
    when that is above zero.
    """
    found = binding(row, limits, now)
    if found is None or value <= found[3]:
        return value
    period, limit, spent, left = found
    if allow_partial and left > 0:
        return left
    currency = row.currency
    raise SpendingLimitExceeded(
        account=row,
        amount=amounts.money(value, currency),
        period=period,
        limit=amounts.money(limit, currency),
        used=amounts.money(spent, currency),
        available=amounts.money(left, currency),
    )


def spend(
    row: Account,
    value: Decimal,
    now: datetime.datetime,
    current: Mapping[str, datetime.date] | None = None,
) -> None:
    """Count ``value`` as spent now, in the locked row (written with its balance).

    ``current``: ``starts(now)``, when the caller has it already.
    """
    if not tracked(row):
        return
    if current is None:
        current = starts(now)
    values = row.__dict__
    # A period at a time, without used()'s dict (a batch counts every transfer).
    for period, amount_column, from_column in _COLUMN_TRIPLES:
        start = current[period]
        spent = _spent_since(row, amount_column, from_column, start)
        # Never refused for the sake of a counter.
        values[amount_column] = min(spent + value, USAGE_CAP)
        values[from_column] = start


def give_back(
    row: Account, value: Decimal, counted_at: datetime.datetime, now: datetime.datetime
) -> None:
    """Give back ``value`` counted at ``counted_at``, to each period still running."""
    if not tracked(row) or not value:
        return
    current = starts(now)
    counted = starts(counted_at)
    for period, (amount_column, from_column) in COLUMNS.items():
        if counted[period] != current[period] or row.__dict__.get(from_column) != current[period]:
            continue
        stored = amounts.raw(row, amount_column) or Decimal(0)
        row.__dict__[amount_column] = max(stored - value, Decimal(0))


def changed(row: Account) -> dict[str, Any]:
    """The usage columns the operation changed in the locked row, to write with it."""
    loaded = row._loaded or {}
    found = {}
    for name in USAGE_COLUMNS:
        value = amounts.raw(row, name) if name.endswith(PERIODS) else row.__dict__.get(name)
        if name in row.__dict__ and loaded.get(name, value) != value:
            found[name] = value
    return found


# Showing ---------------------------------------------------------------------------------


def spending(account: Account, limits: Limits, now: datetime.datetime) -> list[Spending]:
    """``Account.spending()``: each limited period's limit, usage and what is left."""
    if not tracked(account):
        return []
    spent = used(account, now)
    current = starts(now)
    currency = account.currency
    return [
        Spending(
            period=period,
            limit=amounts.money(limits[period], currency),
            used=amounts.money(spent[period], currency),
            available=amounts.money(_available(limits[period], spent[period], currency), currency),
            starts=current[period],
            resets_at=bounds(period, current[period])[1],
        )
        for period in PERIODS
        if period in limits
    ]


def database_now(using: str) -> datetime.datetime:
    """The database's time, as the locked path would read it (one query)."""
    return clock.database_now(using)


# Counting again from the ledger's rows (check_ledger, the migration) ---------------------


def recount(
    using: str,
    now: datetime.datetime,
    *,
    models: tuple[Any, Any] | None = None,
) -> dict[int, dict[str, Decimal]]:
    """What each account spent in the periods running at ``now``, from its transfers and holds.

    The rules of the write path, applied to the stored rows: a hold counts
    (in the periods it was placed in) what it still reserves, or what its
    capture moved; a counted debit counts its amount; both less what
    reversals moved back. Reads the rows of the last five weeks at most, and
    sums them in Python (SQLite sums decimals as floats). ``models``: the
    ``Transfer`` and ``Hold`` classes to read (a migration's own).
    """
    if models is None:
        from . import models as ledger

        models = (ledger.Transfer, ledger.Hold)
    transfer_model: Any = models[0]
    hold_model: Any = models[1]
    current = starts(now)
    moments = {period: instant(current[period]) for period in PERIODS}
    since = min(moments.values())
    # (account, counted at, amount it counts, the transfer its reversals reverse)
    items: list[tuple[int, datetime.datetime, Decimal, int | None]] = []
    holds = (
        hold_model.objects.using(using)
        .filter(source__role__isnull=True, created__gte=since)
        .values_list("source", "created", "amount", "status", "capture", "capture__amount")
    )
    for account, created, amount, status, capture, captured in holds:
        if status == "active":
            items.append((account, created, amount, None))
        elif capture is not None:
            items.append((account, created, captured, capture))
    debits = (
        transfer_model.objects.using(using)
        .filter(
            source__role__isnull=True,
            parent__isnull=True,
            created__gte=since,
            hold__isnull=True,
        )
        .exclude(destination__role="expired")
        .values_list("source", "created", "amount", "pk")
    )
    items.extend(debits)
    reversed_by: dict[int, Decimal] = {}
    reversals = (
        transfer_model.objects.using(using)
        .filter(parent__isnull=False, created__gte=since)
        .values_list("parent", "amount")
    )
    for parent, amount in reversals:
        reversed_by[parent] = reversed_by.get(parent, Decimal(0)) + amount
    found: dict[int, dict[str, Decimal]] = {}
    for account, counted_at, amount, transfer in items:
        net = amount - reversed_by.get(transfer, Decimal(0)) if transfer else amount
        periods = found.setdefault(account, dict.fromkeys(PERIODS, Decimal(0)))
        for period in PERIODS:
            if counted_at >= moments[period]:
                periods[period] += net
    for periods in found.values():
        for period in PERIODS:
            periods[period] = min(periods[period], USAGE_CAP)
    return found


def stored(row: Any, now: datetime.datetime) -> dict[str, Decimal]:
    """An account's stored usage of the periods running at ``now`` (zero where stale)."""
    return used(row, now)
