"""
What a finished report is: its columns, rows and bar charts.

The admin draws them (``admin_reports``), ``exports`` writes them as CSV and
``charts`` as SVG; the report families build them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

from django.utils.translation import gettext_lazy as _

from . import amounts

if TYPE_CHECKING:
    from djmoney.money import Money

    from .exceptions import StrOrPromise

#: A cell of a report: a label or code, a count, or an amount (a Decimal in
#: the row's currency).
Cell: TypeAlias = str | int | Decimal


@dataclass(frozen=True)
class Column:
    """A column of a report's table and CSV."""

    key: str
    label: StrOrPromise
    #: "text", "count" or "money" (money is shown in the row's currency).
    kind: str = "text"
    #: Shown on the page too (False: in the CSV only).
    shown: bool = True


def line_columns(
    key: str, label: StrOrPromise, code_key: str, code_label: StrOrPromise
) -> list[Column]:
    """A report's first columns: what each line is, then its code and its currency, which
    only the CSV shows (the page shows money in its currency)."""
    return [
        Column(key, label),
        Column(code_key, code_label, shown=False),
        Column("currency", _("Currency"), shown=False),
    ]


def type_columns() -> list[Column]:
    """The first columns of a report with a line per account type."""
    return line_columns("account_type", _("Account type"), "account_type_code", _("Type code"))


@dataclass
class Row:
    """One line of a report: its cells by column key."""

    currency: str
    cells: dict[str, Cell]
    #: "account type", "core account" or "total".
    line: str = "account type"

    @property
    def is_total(self) -> bool:
        return self.line == "total"

    def values(self, columns: Iterable[Column]) -> list[Cell | Money | None]:
        """The row's cells in column order; money as ``Money`` in the row's currency."""
        found: list[Cell | Money | None] = []
        for column in columns:
            value = self.cells.get(column.key)
            if column.kind == "money" and value is not None:
                found.append(amounts.money(Decimal(value), self.currency))
            else:
                found.append(value)
        return found


@dataclass
class Bar:
    """One bar of a chart: its label and a value per series (stacked, signed)."""

    label: str
    values: dict[str, Decimal]
    #: The moment or period the bar stands for, as text (for its tooltip).
    period: str = ""


@dataclass
class BarChart:
    """Totals by month (or year) in one currency, as bars of signed stacked segments."""

    title: StrOrPromise
    currency: str
    #: (key, label) of each series, in stacking order.
    series: list[tuple[str, StrOrPromise]]
    bars: list[Bar]


@dataclass
class Report:
    """A finished report: what it covers, its table and its charts."""

    #: "outstanding", "trial_balance" or "movements".
    slug: str
    title: StrOrPromise
    #: The moments it covers, for the CSV: {"at": ...} or {"start": ..., "end": ...}.
    period: dict[str, datetime.datetime]
    columns: list[Column]
    rows: list[Row]
    charts: list[BarChart] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted({row.currency for row in self.rows})
