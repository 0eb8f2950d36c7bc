"""
The reports at a date: outstanding balances and the trial balance.

Both read the same snapshot (:func:`_snapshot`): every account's balance at
the date, summed by group, and the core accounts' balances at the end of
each of the last months, for the charts. The customer accounts' total at a
month's end is minus the core accounts' (the legs of a transfer sum to
zero), so the charts never sum over customer accounts.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from .report_periods import day_label, end_of, month_label, months_back
from .report_queries import (
    CORE_ORDER,
    ZERO,
    CoreAccount,
    Group,
    Totals,
    TypePaths,
    alias,
    balances_at,
    core_accounts,
    core_balances,
    reading,
    type_paths,
)
from .report_tables import (
    Bar,
    BarChart,
    Cell,
    Column,
    Report,
    Row,
    line_columns,
    type_columns,
)

if TYPE_CHECKING:
    from .exceptions import StrOrPromise

#: Months shown by the bar charts of the reports at a date.
CHART_MONTHS = 12


@dataclass(frozen=True)
class _Snapshot:
    """What a report at a date reads."""

    #: The end of the report's day.
    moment: datetime.datetime
    #: Balances at ``moment`` by group (see ``report_queries.balances_at``).
    found: dict[Group, Totals]
    core: list[CoreAccount]
    types: TypePaths
    #: The ends of the charted months, the last being ``moment``.
    months: list[datetime.datetime]
    #: The core accounts' balances at each of ``months``, by (currency, role).
    core_by_month: dict[tuple[str, str], list[Decimal]]


def _snapshot(
    at: datetime.datetime | datetime.date, using: str | None, *, customers_only: bool
) -> _Snapshot:
    """Four queries: the core accounts, the balances, the core accounts' month ends, the
    account types."""
    using = alias(using)
    moment = end_of(at)
    months = months_back(moment, CHART_MONTHS)
    core = core_accounts(using)
    with reading(using) as cursor:
        found = balances_at(cursor, moment, customers_only=customers_only)
        core_by_month = core_balances(cursor, core, months)
    return _Snapshot(moment, found, core, type_paths(using), months, core_by_month)


#: A column of a report at a date, and how a line's totals give its value.
_Figure = tuple[Column, Callable[[Totals], Cell]]

_ACCOUNTS: _Figure = (Column("accounts", _("Accounts"), "count"), lambda t: t.accounts)
#: Outstanding balances: the customer accounts by type.
_OUTSTANDING: list[_Figure] = [
    _ACCOUNTS,
    (Column("accounts_in_credit", _("Accounts in credit"), "count"), lambda t: t.in_credit),
    (Column("owed_to_customers", _("Owed to customers"), "money"), lambda t: t.credit),
    (Column("accounts_in_debt", _("Accounts in debt"), "count"), lambda t: t.in_debt),
    (Column("owed_by_customers", _("Owed by customers"), "money"), lambda t: -t.debt),
    (Column("net", _("Net owed to customers"), "money"), lambda t: t.net),
]
#: The trial balance: debit balances are negative, credit balances positive.
_TRIAL: list[_Figure] = [
    _ACCOUNTS,
    (Column("debit", _("Debit"), "money"), lambda t: -t.debt),
    (Column("credit", _("Credit"), "money"), lambda t: t.credit),
    (Column("balance", _("Balance"), "money"), lambda t: t.net),
]


def _table(
    snapshot: _Snapshot, lead: list[Column], figures: list[_Figure], *, core_lines: bool
) -> tuple[list[Column], list[Row]]:
    """The columns and rows of a report at a date.

    ``lead`` names a line: its label, code and currency (``line_columns``);
    ``figures`` follow. Per currency: a line per core account (if
    ``core_lines``), one per account type, then the total.
    """

    def row(label: str, code: str, currency: str, totals: Totals, line: str) -> Row:
        keys = (column.key for column in lead)
        cells: dict[str, Cell] = dict(zip(keys, (label, code, currency), strict=True))
        cells.update((column.key, value(totals)) for column, value in figures)
        return Row(currency, cells, line)

    found = snapshot.found
    names = {(c.currency, c.role): c.name for c in snapshot.core} if core_lines else {}
    rows = []
    for currency in sorted({c for _r, _t, c in found} | {c for c, _role in names}):
        lines = [
            # A core account without legs is still a line, at zero.
            (names[currency, role], role, found.get((role, None, currency), Totals(accounts=1)))
            for role in CORE_ORDER
            if (currency, role) in names
        ]
        types = snapshot.types.lines(t for r, t, c in found if c == currency and r is None)
        total = Totals()
        for label, code, totals in lines:
            rows.append(row(label, code, currency, totals, "core account"))
            total.add(totals)
        for type_id, code, label in types:
            totals = found[None, type_id, currency]
            rows.append(row(label, code, currency, totals, "account type"))
            total.add(totals)
        rows.append(row(str(_("Total")), "", currency, total, "total"))
    return [*lead, *(column for column, _value in figures)], rows


#: The series of a chart, for its currency: (key, label) of each.
_Series = Callable[[str], list[tuple[str, "StrOrPromise"]]]


def _report(
    snapshot: _Snapshot,
    slug: str,
    title: StrOrPromise,
    table: tuple[list[Column], list[Row]],
    chart_title: StrOrPromise,
    series: _Series,
) -> Report:
    """A report at a date, with a chart per currency that has core accounts.

    Each chart has a bar per charted month, of ``series``: a series whose key
    is a role is that core account's balance, any other is the customer
    accounts' total (minus the core accounts').
    """
    zeros = [ZERO] * len(snapshot.months)
    charts = []
    for currency in sorted({currency for currency, _role in snapshot.core_by_month}):
        shown = series(currency)
        bars = []
        for i, moment in enumerate(snapshot.months):
            core = {
                role: snapshot.core_by_month.get((currency, role), zeros)[i] for role in CORE_ORDER
            }
            customers = -sum(core.values(), ZERO)
            values = {key: core.get(key, customers) for key, _label in shown}
            bars.append(Bar(month_label(moment), values, period=day_label(moment)))
        charts.append(BarChart(chart_title % {"currency": currency}, currency, shown, bars))
    columns, rows = table
    return Report(slug, title, {"at": snapshot.moment}, columns, rows, charts)


def outstanding_balances(
    at: datetime.datetime | datetime.date, *, using: str | None = None
) -> Report:
    """What customer accounts held at ``at`` (a date: the end of that day).

    One line per account type and currency: the number of accounts, those
    in credit and what the business owes them, those in debt and what they
    owe, and the net; then a total per currency. The chart shows the net
    owed to customers at the end of each of the last twelve months (minus
    the core accounts' balances, which the customers' mirror). Costs four
    queries.
    """
    snapshot = _snapshot(at, using, customers_only=True)
    return _report(
        snapshot,
        "outstanding",
        _("Outstanding balances"),
        _table(snapshot, type_columns(), _OUTSTANDING, core_lines=False),
        _("Net owed to customers at the end of each month (%(currency)s)"),
        lambda currency: [("net", _("Net owed to customers"))],
    )


def trial_balance(at: datetime.datetime | datetime.date, *, using: str | None = None) -> Report:
    """Every core account and every account type, with its balance at ``at``.

    One line per core account and per account type (its customer accounts),
    each in its currency: debit balances (negative, what is owed to the
    business) and credit balances (positive, what it owes) apart, and the
    net. Each currency's total nets to zero, and is shown. The chart shows
    the core accounts and the customer accounts at the end of each of the
    last twelve months. Costs four queries.
    """
    snapshot = _snapshot(at, using, customers_only=False)
    names = {(c.currency, c.role): c.name for c in snapshot.core}
    lead = line_columns("line", _("Line"), "code", _("Code"))
    return _report(
        snapshot,
        "trial_balance",
        _("Trial balance"),
        _table(snapshot, lead, _TRIAL, core_lines=True),
        _("Balances at the end of each month (%(currency)s)"),
        lambda currency: [
            *((role, names.get((currency, role), role)) for role in CORE_ORDER),
            ("customers", str(_("Customer accounts"))),
        ],
    )
