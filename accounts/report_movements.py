"""
The movements report: what moved into and out of customer accounts over a period.

Each leg on a customer account is one kind of movement (``MOVEMENT_KINDS``);
the report reconciles the opening and closing totals with them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import connections
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidArgument
from .report_periods import Bucket, buckets, day_label, end_of, start_of
from .report_queries import (
    EXPIRED,
    SALES,
    SOURCE,
    ZERO,
    alias,
    balances_sql,
    exact_sum,
    moment_param,
    read_totals,
    reading,
    summed,
    table_names,
    type_paths,
)
from .report_tables import Bar, BarChart, Cell, Column, Report, Row, type_columns

if TYPE_CHECKING:
    from .exceptions import StrOrPromise


@dataclass(frozen=True)
class Leg:
    """What a movement is judged by: one leg on a customer account."""

    #: Role of the account on the other side of the transfer (``Account.Role``),
    #: or None when that is another customer account.
    counterparty: str | None
    #: Money into the customer account (a positive leg).
    incoming: bool
    #: The transfer reverses another one (it has a ``parent``).
    reversal: bool
    #: The transfer settles a collected debt (``accounts.collections.settle``).
    collected: bool = False


@dataclass(frozen=True)
class Kind:
    """A kind of movement: a column of the movements report."""

    #: Its column in the CSV.
    code: str
    label: StrOrPromise
    #: Whether a leg is of this kind. Exactly one kind matches any leg.
    matches: Callable[[Leg], bool]


#: The kinds of movement, in the order the report shows them. To add one,
#: add a kind here whose test takes its legs from the kind that had them (and
#: what tells them apart to :class:`Leg` and the movements query):
#: ``tests/test_reports.py`` checks that every possible leg matches exactly
#: one kind.
MOVEMENT_KINDS: tuple[Kind, ...] = (
    Kind(
        "top_ups",
        _("Top-ups"),
        lambda leg: (
            not leg.reversal and not leg.collected and leg.counterparty == SOURCE and leg.incoming
        ),
    ),
    Kind(
        "spending",
        _("Spending"),
        lambda leg: (
            not leg.reversal
            and not leg.collected
            and leg.counterparty == SALES
            and not leg.incoming
        ),
    ),
    Kind(
        "refunds_and_reversals",
        _("Refunds and reversals"),
        # A reversal of anything, and money paid back out of sales.
        lambda leg: (
            leg.reversal or (not leg.collected and leg.counterparty == SALES and leg.incoming)
        ),
    ),
    Kind(
        "expiries",
        _("Expiries"),
        lambda leg: not leg.reversal and not leg.collected and leg.counterparty == EXPIRED,
    ),
    Kind(
        "withdrawals",
        _("Withdrawals"),
        lambda leg: (
            not leg.reversal
            and not leg.collected
            and leg.counterparty == SOURCE
            and not leg.incoming
        ),
    ),
    Kind(
        "collections",
        _("Collections"),
        # Money a collection run brought back for a debt (and, on a collection
        # source that is not a core account, what it paid out for it).
        lambda leg: not leg.reversal and leg.collected,
    ),
    Kind(
        "between_accounts",
        _("Between customer accounts"),
        lambda leg: not leg.reversal and not leg.collected and leg.counterparty is None,
    ),
)


def classify(leg: Leg) -> Kind:
    """The kind of movement ``leg`` is. Raises ``LookupError`` if no kind claims it."""
    for kind in MOVEMENT_KINDS:
        if kind.matches(leg):
            return kind
    raise LookupError("No movement kind for %r: add one to MOVEMENT_KINDS." % (leg,))


def movements(
    start: datetime.datetime | datetime.date,
    end: datetime.datetime | datetime.date,
    *,
    using: str | None = None,
) -> Report:
    """What moved into and out of customer accounts from ``start`` to ``end`` (inclusive).

    One line per account type and currency: the opening total (the balances
    just before ``start``), what each kind of movement (``MOVEMENT_KINDS``)
    added or took, and the closing total (the balances at ``end``). Opening
    and closing come from the stored running balances, the movements from
    the transfers themselves, all in one statement (one snapshot of the
    ledger, even while money moves), so "unexplained" (closing minus opening
    minus the movements) is a real check: it is zero in a sound ledger. The
    chart shows each kind by month (by year for periods over three years).
    Costs two queries. Raises ``InvalidArgument`` if ``start`` is after ``end``.
    """
    using = alias(using)
    first, last = start_of(start), end_of(end)
    if first > last:
        raise InvalidArgument(
            _("The period starts (%(start)s) after it ends (%(end)s)."), start=first, end=last
        )
    periods = buckets(first, last)
    opening, closing, flows, by_bucket = _movements(using, first, last, periods)
    types = type_paths(using)
    columns = [
        *type_columns(),
        Column("opening", _("Opening"), "money"),
        *(Column(kind.code, kind.label, "money") for kind in MOVEMENT_KINDS),
        Column("closing", _("Closing"), "money"),
        Column("unexplained", _("Unexplained"), "money"),
    ]
    keys = set(opening) | set(closing) | set(flows)
    rows = []
    for currency in sorted({c for _t, c in keys}):
        total: dict[str, Decimal] = {}
        for type_id, code, label in types.lines(t for t, c in keys if c == currency):
            moved = flows.get((type_id, currency), {})
            figures = {
                "opening": opening.get((type_id, currency), ZERO),
                **{kind.code: moved.get(kind.code, ZERO) for kind in MOVEMENT_KINDS},
                "closing": closing.get((type_id, currency), ZERO),
            }
            figures["unexplained"] = (
                figures["closing"] - figures["opening"] - sum(moved.values(), ZERO)
            )
            for key, value in figures.items():
                total[key] = total.get(key, ZERO) + value
            line = {"account_type": label, "account_type_code": code, "currency": currency}
            cells: dict[str, Cell] = {**figures, **line}
            rows.append(Row(currency, cells))
        line = {"account_type": str(_("Total")), "account_type_code": "", "currency": currency}
        total_cells: dict[str, Cell] = {**total, **line}
        rows.append(Row(currency, total_cells, line="total"))
    by_year = len(periods) > 1 and periods[0].label.isdigit()
    charts = [
        BarChart(
            title=(
                _("Movements by year (%(currency)s)")
                if by_year
                else _("Movements by month (%(currency)s)")
            )
            % {"currency": currency},
            currency=currency,
            series=[(kind.code, kind.label) for kind in MOVEMENT_KINDS],
            bars=[
                Bar(
                    bucket.label,
                    by_bucket.get((currency, i), {}),
                    period="%s – %s" % (day_label(bucket.start), day_label(bucket.end)),
                )
                for i, bucket in enumerate(periods)
            ],
        )
        for currency in sorted({c for _t, c in keys})
    ]
    return Report(
        slug="movements",
        title=_("Movements"),
        period={"start": first, "end": last},
        columns=columns,
        rows=rows,
        charts=charts,
    )


_ByType = dict[tuple[int | None, str], Decimal]


def _movements(
    using: str, first: datetime.datetime, last: datetime.datetime, periods: list[Bucket]
) -> tuple[
    _ByType,
    _ByType,
    dict[tuple[int | None, str], dict[str, Decimal]],
    dict[tuple[str, int], dict[str, Decimal]],
]:
    """Opening and closing totals and the period's movements, in one statement.

    Returns the opening and closing totals by (account type, currency), and
    the movements by (account type, currency) and by (currency, bucket),
    each by kind code.

    The movements are read from the transfers of the period (half as many
    rows as their legs): a transfer and its two legs are written together,
    under the same lock, with the same moment, and its legs are minus its
    amount on its source and plus it on its destination (``check_ledger``
    checks the shape). Customer accounts on either side count.
    """
    connection = connections[using]
    tables = table_names(connection)
    balances, balance_params = balances_sql(
        connection, [first - datetime.timedelta(microseconds=1), last], customers_only=True
    )
    bucket = "0"
    if len(periods) > 1:
        bucket = "CASE %s ELSE %d END" % (
            " ".join("WHEN tr.created < %%s THEN %d" % i for i in range(len(periods) - 1)),
            len(periods) - 1,
        )
    # The two parts line up: part, role, type, currency, the other side's
    # role, then ten columns typed int, int, int, money, money (twice): the
    # balances at the two moments, or the other side's type, the reversal
    # flag, the bucket and the amount. NULLs pad the flows.
    flows = (
        "SELECT 1, s.role, CASE WHEN s.role IS NULL THEN s.account_type_id END, tr.currency, "
        "d.role, CASE WHEN d.role IS NULL THEN d.account_type_id END, "
        # 1: a reversal; 2: a debt's settlement; 0: anything else.
        "CASE WHEN tr.parent_id IS NOT NULL THEN 1 WHEN st.id IS NOT NULL THEN 2 ELSE 0 END, "
        "%(bucket)s, %(sum)s, "
        "NULL, NULL, NULL, NULL, NULL, NULL "
        "FROM %(transfer)s tr JOIN %(account)s s ON s.id = tr.source_id "
        "JOIN %(account)s d ON d.id = tr.destination_id "
        "LEFT JOIN %(settlement)s st ON st.transfer_id = tr.id "
        "WHERE tr.created >= %%s AND tr.created <= %%s AND (s.role IS NULL OR d.role IS NULL) "
        # By position: the bucket's parameters would not compare equal twice.
        "GROUP BY 2, 3, 4, 5, 6, 7, 8"
        % {
            "bucket": bucket,
            "sum": exact_sum(connection, "tr.amount"),
            "transfer": tables["transfer"],
            "account": tables["account"],
            "settlement": tables["settlement"],
        }
    )
    sql = "SELECT 0, b.* FROM (%s) b UNION ALL %s" % (balances, flows)
    boundaries = [moment_param(connection, p.end) for p in periods[:-1]]
    params = [
        *balance_params,
        *boundaries,
        moment_param(connection, first),
        moment_param(connection, last),
    ]
    opening: _ByType = {}
    closing: _ByType = {}
    by_type: dict[tuple[int | None, str], dict[str, Decimal]] = {}
    by_bucket: dict[tuple[str, int], dict[str, Decimal]] = {}

    def add(type_id: int | None, currency: str, index: int, leg: Leg, amount: Decimal) -> None:
        kind = classify(leg)
        cell = by_type.setdefault((type_id, currency), {})
        cell[kind.code] = cell.get(kind.code, ZERO) + amount
        bar = by_bucket.setdefault((currency, index), {})
        bar[kind.code] = bar.get(kind.code, ZERO) + amount

    with reading(using) as cursor:
        cursor.execute(sql, params)
        for part, *row in cursor.fetchall():
            if not part:
                (_role, type_id, currency), (before, after) = read_totals(connection, row, 2)
                if before.accounts:
                    opening[type_id, currency] = before.net
                if after.accounts:
                    closing[type_id, currency] = after.net
                continue
            role, type_id, currency, other_role, other_type, nature, index, total = row[:8]
            amount = summed(connection, total)
            reversal, collected = int(nature) == 1, int(nature) == 2
            if role is None:
                add(
                    type_id,
                    currency,
                    int(index),
                    Leg(other_role, False, reversal, collected),
                    -amount,
                )
            if other_role is None:
                add(other_type, currency, int(index), Leg(role, True, reversal, collected), amount)
    return opening, closing, by_type, by_bucket
