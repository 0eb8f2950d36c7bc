"""
The reports at a date: outstanding balances and the trial balance.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils.translation import gettext_lazy as _

from .report_periods import day_label, end_of, month_label, months_back
from .report_queries import (
    CORE_ORDER,
    ZERO,
    Totals,
    alias,
    balances_at,
    core_accounts,
    core_balances,
    reading,
    type_order,
    type_paths,
)
from .report_tables import Bar, BarChart, Column, Report, Row

#: Months shown by the bar charts of the reports at a date.
CHART_MONTHS = 12


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
    using = alias(using)
    moment = end_of(at)
    moments = months_back(moment, CHART_MONTHS)
    accounts = core_accounts(using)
    with reading(using) as cursor:
        found = balances_at(cursor, moment, customers_only=True)
        core = core_balances(cursor, accounts, moments)
    paths = type_paths(using)
    columns = [
        Column("account_type", _("Account type")),
        Column("account_type_code", _("Type code"), shown=False),
        Column("currency", _("Currency"), shown=False),
        Column("accounts", _("Accounts"), "count"),
        Column("accounts_in_credit", _("Accounts in credit"), "count"),
        Column("owed_to_customers", _("Owed to customers"), "money"),
        Column("accounts_in_debt", _("Accounts in debt"), "count"),
        Column("owed_by_customers", _("Owed by customers"), "money"),
        Column("net", _("Net owed to customers"), "money"),
    ]

    def cells(label: str, code: str, currency: str, totals: Totals) -> dict[str, Any]:
        return {
            "account_type": label,
            "account_type_code": code,
            "currency": currency,
            "accounts": totals.accounts,
            "accounts_in_credit": totals.in_credit,
            "owed_to_customers": totals.credit,
            "accounts_in_debt": totals.in_debt,
            "owed_by_customers": -totals.debt,
            "net": totals.net,
        }

    rows = []
    order = type_order(paths)
    for currency in sorted({currency for _r, _t, currency in found}):
        total = Totals()
        for type_id in sorted((t for _r, t, c in found if c == currency), key=order):
            totals = found[None, type_id, currency]
            code, label = paths.get(type_id, ("", "#%s" % type_id))
            rows.append(Row(currency, cells(label, code, currency, totals)))
            total.add(totals)
        rows.append(Row(currency, cells(str(_("Total")), "", currency, total), line="total"))
    charts = []
    for currency in sorted({currency for currency, _role in core}):
        nets = [
            -sum(
                (core[currency, role][i] for role in CORE_ORDER if (currency, role) in core), ZERO
            )
            for i in range(len(moments))
        ]
        charts.append(
            BarChart(
                title=_("Net owed to customers at the end of each month (%(currency)s)")
                % {"currency": currency},
                currency=currency,
                series=[("net", _("Net owed to customers"))],
                bars=[
                    Bar(month_label(m), {"net": net}, period=day_label(m))
                    for m, net in zip(moments, nets, strict=True)
                ],
            )
        )
    return Report(
        slug="outstanding",
        title=_("Outstanding balances"),
        period={"at": moment},
        columns=columns,
        rows=rows,
        charts=charts,
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
    using = alias(using)
    moment = end_of(at)
    moments = months_back(moment, CHART_MONTHS)
    core = core_accounts(using)
    with reading(using) as cursor:
        found = balances_at(cursor, moment, customers_only=False)
        balances = core_balances(cursor, core, moments)
    paths = type_paths(using)
    columns = [
        Column("line", _("Line")),
        Column("code", _("Code"), shown=False),
        Column("currency", _("Currency"), shown=False),
        Column("accounts", _("Accounts"), "count"),
        Column("debit", _("Debit"), "money"),
        Column("credit", _("Credit"), "money"),
        Column("balance", _("Balance"), "money"),
    ]

    def cells(label: str, code: str, currency: str, totals: Totals) -> dict[str, Any]:
        return {
            "line": label,
            "code": code,
            "currency": currency,
            "accounts": totals.accounts,
            "debit": -totals.debt,
            "credit": totals.credit,
            "balance": totals.net,
        }

    rows = []
    order = type_order(paths)
    names = {(c.currency, c.role): c.name for c in core}
    currencies = sorted({currency for _r, _t, currency in found} | {c.currency for c in core})
    for currency in currencies:
        total = Totals()
        for role in CORE_ORDER:
            if (currency, role) not in names:
                continue
            totals = found.get((role, None, currency), Totals(accounts=1))
            rows.append(
                Row(currency, cells(names[currency, role], role, currency, totals), "core account")
            )
            total.add(totals)
        for type_id in sorted((t for r, t, c in found if c == currency and r is None), key=order):
            totals = found[None, type_id, currency]
            code, label = paths.get(type_id, ("", "#%s" % type_id))
            rows.append(Row(currency, cells(label, code, currency, totals)))
            total.add(totals)
        rows.append(Row(currency, cells(str(_("Total")), "", currency, total), line="total"))
    charts = []
    for currency in sorted({currency for currency, _role in balances}):
        series = [(role, names.get((currency, role), role)) for role in CORE_ORDER]
        series.append(("customers", str(_("Customer accounts"))))
        bars = []
        for i, m in enumerate(moments):
            values = {
                role: balances.get((currency, role), [ZERO] * len(moments))[i]
                for role in CORE_ORDER
            }
            values["customers"] = -sum(values.values(), ZERO)
            bars.append(Bar(month_label(m), values, period=day_label(m)))
        charts.append(
            BarChart(
                title=_("Balances at the end of each month (%(currency)s)")
                % {"currency": currency},
                currency=currency,
                series=series,
                bars=bars,
            )
        )
    return Report(
        slug="trial_balance",
        title=_("Trial balance"),
        period={"at": moment},
        columns=columns,
        rows=rows,
        charts=charts,
    )
