"""
One account's balance over time, for its balance chart (``accounts.charts``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connections
from django.utils import timezone

from . import amounts
from .models import Account, Transaction
from .report_periods import end_of, local_date, start_of
from .report_queries import alias, balances_of

#: At most this many points in a balance chart, however long the period.
MAX_POINTS = 120


@dataclass
class BalanceHistory:
    """An account's balance at evenly spaced moments of a period (see :func:`balance_history`)."""

    account: Account
    start: datetime.datetime
    end: datetime.datetime
    #: (moment, balance at that moment), oldest first.
    points: list[tuple[datetime.datetime, Decimal]]
    #: The credit limit now (a floor at minus this), or None for no limit.
    credit_limit: Decimal | None
    #: "day" (one point at the end of each day) or "sample" (evenly spaced).
    step: str


def balance_history(
    account: Account,
    start: datetime.datetime | datetime.date | None = None,
    end: datetime.datetime | datetime.date | None = None,
    *,
    max_points: int = MAX_POINTS,
    using: str | None = None,
) -> BalanceHistory:
    """The balance of ``account`` at the end of each day from ``start`` to ``end``.

    Dates are whole days; ``start`` defaults to the day of the account's
    first leg (or its creation), ``end`` to now. A period longer than
    ``max_points`` days is sampled at ``max_points`` evenly spaced moments
    instead, the last at ``end``, so the cost is bounded whatever the
    history: one query (with one index seek per point), plus one to find the
    first leg when ``start`` is None.
    """
    using = alias(using)
    last = end_of(end) if end is not None else timezone.now()
    if start is None:
        first_leg = (
            Transaction.objects.using(using)
            .filter(account=account.pk)
            .order_by("created", "pk")
            .values_list("created", flat=True)
            .first()
        )
        first = start_of(local_date(min(first_leg or account.created, last)))
    else:
        first = start_of(start)
    first = min(first, last)
    days = (local_date(last) - local_date(first)).days + 1
    if days <= max_points:
        step = "day"
        day = local_date(first)
        moments = [end_of(day + datetime.timedelta(days=n)) for n in range(days - 1)] + [last]
    else:
        step = "sample"
        span = last - first
        moments = [first + span * (n + 1) / max_points for n in range(max_points - 1)] + [last]
    with connections[using].cursor() as cursor:
        balances = balances_of(cursor, [(account.pk, moment) for moment in moments])
    limit = account.credit_limit
    return BalanceHistory(
        account=account,
        start=first,
        end=last,
        points=list(zip(moments, balances, strict=True)),
        credit_limit=None if limit is None else amounts.raw(account, "credit_limit"),
        step=step,
    )
