"""
Financial reports: outstanding balances, the trial balance and movements.

What finance staff ask without a developer: how much do we owe our customers
at a date, by kind of account (:func:`outstanding_balances`); does the ledger
balance, line by line (:func:`trial_balance`); what was topped up, spent,
refunded and lost to expiry over a period, and do the opening and closing
totals reconcile (:func:`movements`); and how one account's balance moved
(:func:`balance_history`, drawn by ``accounts.charts``).

Where the figures come from. Every leg stores the balance of its account
after it (``Transaction.balance_after``), and the index (account, created,
id) finds an account's latest leg at or before any moment with one seek. So
the balance of an account at a moment is *the balance_after of its latest leg
at or before that moment*, never a sum over its history; a report at a date
costs a seek or two per account, whatever the length of the histories.
Movements are one grouped sum over the period's transfers (see
:func:`_movements`), in the statement that reads the opening and closing
totals. Totals are summed exactly: PostgreSQL and MariaDB add decimals
exactly, and on SQLite, which would add them as floating-point numbers,
each amount is summed as a whole number of ten-thousandths (the columns'
precision) and divided afterwards.

"Customer accounts" are all accounts that are not core accounts (sources,
sales and expired accounts), grouped by their own account type (not their
type's ancestors) and currency. Money into an account is positive, money
out negative; so balances the business owes are positive (credit balances)
and debts are negative (debit balances).

Rejected alternatives: summing every account's legs up to the date (cost
grows with the ledger's age); reading the current balances and subtracting
later movements (one wrong row would shift every later report, and the
reconciliation in :func:`movements` would check nothing).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, router
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from . import amounts
from .collection_models import Settlement
from .exceptions import InvalidArgument
from .fields import window_bound
from .models import Account, AccountType, Transaction, Transfer

ZERO = Decimal(0)
#: Roles of the core accounts, as stored (``Account.Role``).
SOURCE, SALES, EXPIRED = (
    Account.Role.SOURCE.value,
    Account.Role.SALES.value,
    Account.Role.EXPIRED.value,
)
#: Core lines of the trial balance, in this order.
CORE_ORDER = (SOURCE, SALES, EXPIRED)
#: Months shown by the bar charts of the reports at a date.
CHART_MONTHS = 12
#: A period longer than this many months is charted by year.
MAX_MONTHLY_BARS = 36
#: At most this many points in a balance chart, however long the period.
MAX_POINTS = 120
#: The columns' precision: amounts are whole multiples of this.
_QUANTUM = 4


# Movement kinds ----------------------------------------------------------------------


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
    label: Any
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


# Report tables -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of a report's table and CSV."""

    key: str
    label: Any
    #: "text", "count" or "money" (money is shown in the row's currency).
    kind: str = "text"
    #: Shown on the page too (False: in the CSV only).
    shown: bool = True


@dataclass
class Row:
    """One line of a report: its cells by column key."""

    currency: str
    cells: dict[str, Any]
    #: "account type", "core account" or "total".
    line: str = "account type"

    @property
    def is_total(self) -> bool:
        return self.line == "total"

    def values(self, columns: Iterable[Column]) -> list[Any]:
        """The row's cells in column order; money as ``Money`` in the row's currency."""
        found = []
        for column in columns:
            value = self.cells.get(column.key)
            if column.kind == "money" and value is not None:
                value = amounts.money(value, self.currency)
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

    title: Any
    currency: str
    #: (key, label) of each series, in stacking order.
    series: list[tuple[str, Any]]
    bars: list[Bar]


@dataclass
class Report:
    """A finished report: what it covers, its table and its charts."""

    #: "outstanding", "trial_balance" or "movements".
    slug: str
    title: Any
    #: The moments it covers, for the CSV: {"at": ...} or {"start": ..., "end": ...}.
    period: dict[str, datetime.datetime]
    columns: list[Column]
    rows: list[Row]
    charts: list[BarChart] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted({row.currency for row in self.rows})


# SQL helpers -------------------------------------------------------------------------

#: A LIMIT no table reaches: a derived table with a LIMIT is computed once, not
#: merged into the query around it, which would repeat its subqueries (one
#: index seek per account) for every reference to their results. PostgreSQL,
#: MariaDB and SQLite all honour it.
_FENCE = 10**15


def _using(using: str | None) -> str:
    return using or router.db_for_read(Transaction)


def _tables(connection: Any) -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "account": qn(Account._meta.db_table),
        "leg": qn(Transaction._meta.db_table),
        "transfer": qn(Transfer._meta.db_table),
        "settlement": qn(Settlement._meta.db_table),
    }


def _sum(connection: Any, expression: str) -> str:
    """An exact SUM of a money expression (see the module's docstring)."""
    if connection.vendor == "sqlite":
        return "SUM(CAST(ROUND((%s) * %d) AS INTEGER))" % (expression, 10**_QUANTUM)
    return "SUM(%s)" % expression


def _summed(connection: Any, value: Any) -> Decimal:
    """What :func:`_sum` returned, as an exact Decimal."""
    if value is None:
        return ZERO
    if connection.vendor == "sqlite":
        return Decimal(int(value)).scaleb(-_QUANTUM)
    return Decimal(value)


def _decimal(value: Any) -> Decimal | None:
    """A money column read without the ORM, as the Decimal it stores.

    SQLite returns a REAL for a decimal column: its shortest representation
    is the stored value, which never has more than 15 significant digits.
    """
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(Decimal(1).scaleb(-_QUANTUM))
    return Decimal(value)


def _balance_at(connection: Any) -> str:
    """SQL for the balance at a moment (one ``%s``) of each account ``a``; NULL before
    its first leg. PostgreSQL and SQLite only (see :func:`_balances_sql` for MariaDB).

    "The balance_after of the account's latest leg at or before the moment":
    the first row of a backward scan of the (account, created, id) index from
    the moment, one index seek.
    """
    return (
        "(SELECT l.balance_after FROM %s l WHERE l.account_id = a.id AND l.created <= %%s "
        "ORDER BY l.created DESC, l.id DESC LIMIT 1)" % _tables(connection)["leg"]
    )


def _balance_of(connection: Any) -> str:
    """SQL for one account's balance at a moment, NULL before its first leg.

    Three parameters: the account, the account again, the moment. Written as
    ``Account.balance_at`` is, the leg at the latest moment found by an
    index-only seek: the form every backend plans as a seek, however long
    the account's history (MariaDB walks the newer legs of a busy account
    for the other).
    """
    leg = _tables(connection)["leg"]
    return (
        "(SELECT l.balance_after FROM %(leg)s l WHERE l.account_id = %%s AND l.created = "
        "(SELECT m.created FROM %(leg)s m WHERE m.account_id = %%s AND m.created <= %%s "
        "ORDER BY m.created DESC LIMIT 1) ORDER BY l.id DESC LIMIT 1)" % {"leg": leg}
    )


def _moment(connection: Any, value: datetime.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


@contextmanager
def _reading(using: str) -> Iterator[Any]:
    """A cursor for a report's queries.

    On PostgreSQL, just-in-time compilation is turned off while they run,
    and put back as it was: it costs half a second per query, more than it
    saves. (Should a query fail inside a transaction, rolling it back puts
    the setting back too.)
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            yield cursor
            return
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', false)")
        before = cursor.fetchone()[0]
        try:
            yield cursor
        finally:
            with suppress(DatabaseError):
                cursor.execute("SELECT set_config('jit', %s, false)", [before])


@dataclass
class _Totals:
    """Balances at a moment, summed over a group of accounts."""

    accounts: int = 0
    in_credit: int = 0
    credit: Decimal = ZERO
    in_debt: int = 0
    debt: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.credit + self.debt

    def add(self, other: _Totals) -> None:
        self.accounts += other.accounts
        self.in_credit += other.in_credit
        self.credit += other.credit
        self.in_debt += other.in_debt
        self.debt += other.debt


#: (role, account type id, currency): role None for customer accounts, which
#: are grouped by type; core accounts are grouped by role (one per currency).
_Group = tuple[str | None, int | None, str]


def _balances_sql(
    connection: Any, moments: list[datetime.datetime], *, customers_only: bool
) -> tuple[str, list[Any]]:
    """Every account's balance at each of ``moments``, summed by group: (SQL, params).

    Columns: role, type, currency, NULL (see :func:`_movements`), then per
    moment the accounts, those in credit, those in debt, what the first are
    owed and what the second owe.
    An account counts from its creation or its first leg, whichever is first.
    """
    tables = _tables(connection)
    count = len(moments)
    columns = "a.role AS role, CASE WHEN a.role IS NULL THEN a.account_type_id END AS type, "
    columns += "a.currency AS currency, a.created AS created"
    where = " WHERE a.role IS NULL" if customers_only else ""
    if connection.vendor == "mysql":
        # MariaDB evaluates a subquery in a join condition several times per
        # row, and walks a busy account's newer legs for a correlated
        # "ORDER BY ... LIMIT 1": the latest moment of each account is found
        # first (an index-only MAX), then the leg at that moment.
        latest = ", ".join(
            "(SELECT MAX(m.created) FROM %s m WHERE m.account_id = a.id AND m.created <= %%s) "
            "AS t%d" % (tables["leg"], i)
            for i in range(count)
        )
        legs = ", ".join(
            "(SELECT l.balance_after FROM %s l WHERE l.account_id = y.id AND l.created = y.t%d "
            "ORDER BY l.id DESC LIMIT 1) AS b%d" % (tables["leg"], i, i)
            for i in range(count)
        )
        accounts = (
            "SELECT y.role, y.type, y.currency, y.created, %s FROM (SELECT a.id, %s, %s "
            "FROM %s a%s LIMIT %d) y" % (legs, columns, latest, tables["account"], where, _FENCE)
        )
    else:
        balances = ", ".join("%s AS b%d" % (_balance_at(connection), i) for i in range(count))
        accounts = "SELECT %s, %s FROM %s a%s" % (columns, balances, tables["account"], where)
    outer = []
    for i in range(len(moments)):
        b = "x.b%d" % i
        outer += [
            "SUM(CASE WHEN %s IS NOT NULL OR x.created <= %%s THEN 1 ELSE 0 END)" % b,
            "SUM(CASE WHEN %s > 0 THEN 1 ELSE 0 END)" % b,
            "SUM(CASE WHEN %s < 0 THEN 1 ELSE 0 END)" % b,
            _sum(connection, "CASE WHEN %s > 0 THEN %s ELSE 0 END" % (b, b)),
            _sum(connection, "CASE WHEN %s < 0 THEN %s ELSE 0 END" % (b, b)),
        ]
    sql = (
        "SELECT x.role, x.type, x.currency, NULL AS other, %s FROM (%s LIMIT %d) x "
        "GROUP BY x.role, x.type, x.currency" % (", ".join(outer), accounts, _FENCE)
    )
    adapted = [_moment(connection, m) for m in moments]
    return sql, adapted + adapted


def _totals(connection: Any, row: Any, count: int) -> tuple[_Group, list[_Totals]]:
    """Read a row of :func:`_balances_sql` for ``count`` moments."""
    role, type_id, currency, _other, *values = row
    found = []
    for i in range(count):
        accounts, in_credit, in_debt, credit, debt = values[5 * i : 5 * i + 5]
        found.append(
            _Totals(
                accounts=int(accounts or 0),
                in_credit=int(in_credit or 0),
                credit=_summed(connection, credit),
                in_debt=int(in_debt or 0),
                debt=_summed(connection, debt),
            )
        )
    return (role, type_id, currency), found


def _balances(
    cursor: Any, moment: datetime.datetime, *, customers_only: bool
) -> dict[_Group, _Totals]:
    """Every account's balance at ``moment`` (inclusive), summed by group. One query."""
    connection = cursor.db
    sql, params = _balances_sql(connection, [moment], customers_only=customers_only)
    found = {}
    cursor.execute(sql, params)
    for row in cursor.fetchall():
        group, (totals,) = _totals(connection, row, 1)
        if totals.accounts:
            found[group] = totals
    return found


@dataclass(frozen=True)
class _Core:
    pk: int
    role: str
    currency: str
    name: str


def _core_accounts(using: str) -> list[_Core]:
    return [
        _Core(pk, role, currency, name)
        for pk, role, currency, name in Account.objects.using(using)
        .filter(role__isnull=False)
        .order_by("currency", "pk")
        .values_list("pk", "role", "currency", "name")
    ]


def _core_balances(
    cursor: Any, core: list[_Core], moments: list[datetime.datetime]
) -> dict[tuple[str, str], list[Decimal]]:
    """Each core account's balance at each of ``moments``, by (currency, role). One query."""
    if not moments or not core:
        return {}
    connection = cursor.db
    # One seek per account and moment, the account given: a busy core
    # account's history is never walked.
    sql = "SELECT %s" % ", ".join(
        _balance_of(connection) for _pair in range(len(core) * len(moments))
    )
    params = []
    for account in core:
        for moment in moments:
            params += [account.pk, account.pk, _moment(connection, moment)]
    cursor.execute(sql, params)
    values = list(cursor.fetchone())
    found = {}
    for index, account in enumerate(core):
        row = values[index * len(moments) : (index + 1) * len(moments)]
        found[account.currency, account.role] = [_decimal(v) or ZERO for v in row]
    return found


# Time ---------------------------------------------------------------------------------


def _start_of(value: datetime.datetime | datetime.date) -> datetime.datetime:
    return window_bound(value, end=False)


def _end_of(value: datetime.datetime | datetime.date) -> datetime.datetime:
    return window_bound(value, end=True)


def _local_date(moment: datetime.datetime) -> datetime.date:
    if settings.USE_TZ and timezone.is_aware(moment):
        return timezone.localtime(moment).date()
    return moment.date()


def _month_start(year: int, month: int) -> datetime.datetime:
    return _start_of(datetime.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1))


def _months_back(moment: datetime.datetime, count: int) -> list[datetime.datetime]:
    """The ends of the ``count - 1`` months before ``moment``'s month, then ``moment``."""
    day = _local_date(moment)
    ends = []
    for back in range(count - 1, 0, -1):
        following = _month_start(day.year, day.month - back + 1)
        ends.append(following - datetime.timedelta(microseconds=1))
    return [*ends, moment]


def _month_label(moment: datetime.datetime) -> str:
    return date_format(_local_date(moment), "M Y")


def _day_label(moment: datetime.datetime) -> str:
    return date_format(_local_date(moment), "DATE_FORMAT")


@dataclass(frozen=True)
class Bucket:
    """A stretch of a period: a month (or a year) clipped to the period."""

    label: str
    start: datetime.datetime
    #: Exclusive, except for the last bucket, which ends with the period.
    end: datetime.datetime


def buckets(start: datetime.datetime, end: datetime.datetime) -> list[Bucket]:
    """The months from ``start`` to ``end``, or the years if there are over 36 months."""
    first, last = _local_date(start), _local_date(end)
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    by_year = months > MAX_MONTHLY_BARS
    found = []
    year, month = first.year, 1 if by_year else first.month
    lower = start
    while True:
        if by_year:
            upper = _month_start(year + 1, 1)
            label = str(year)
            year += 1
        else:
            upper = _month_start(year, month + 1)
            label = _month_label(lower)
            year, month = year + month // 12, month % 12 + 1
        if upper > end:
            found.append(Bucket(label, lower, end))
            return found
        found.append(Bucket(label, lower, upper))
        lower = upper


# Labels of lines --------------------------------------------------------------------


def _type_paths(using: str) -> dict[int | None, tuple[str, str]]:
    """(code, "Parent / Child" name) of every account type, and of "no type"."""
    types = {t.pk: t for t in AccountType.objects.using(using).all()}
    paths: dict[int | None, tuple[str, str]] = {None: ("", str(_("No account type")))}
    for pk, node in types.items():
        names = [node.name]
        seen = {pk}
        parent = types.get(node.parent_id) if node.parent_id else None
        while parent is not None and parent.pk not in seen:
            names.append(parent.name)
            seen.add(parent.pk)
            parent = types.get(parent.parent_id) if parent.parent_id else None
        paths[pk] = (node.code, " / ".join(reversed(names)))
    return paths


def _type_order(paths: dict[int | None, tuple[str, str]]) -> Callable[[int | None], Any]:
    return lambda type_id: (type_id is None, paths.get(type_id, ("", ""))[1].lower(), type_id or 0)


# The reports --------------------------------------------------------------------------


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
    using = _using(using)
    moment = _end_of(at)
    moments = _months_back(moment, CHART_MONTHS)
    accounts = _core_accounts(using)
    with _reading(using) as cursor:
        found = _balances(cursor, moment, customers_only=True)
        core = _core_balances(cursor, accounts, moments)
    paths = _type_paths(using)
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

    def cells(label: str, code: str, currency: str, totals: _Totals) -> dict[str, Any]:
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
    order = _type_order(paths)
    for currency in sorted({currency for _r, _t, currency in found}):
        total = _Totals()
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
                    Bar(_month_label(m), {"net": net}, period=_day_label(m))
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
    using = _using(using)
    moment = _end_of(at)
    moments = _months_back(moment, CHART_MONTHS)
    core = _core_accounts(using)
    with _reading(using) as cursor:
        found = _balances(cursor, moment, customers_only=False)
        balances = _core_balances(cursor, core, moments)
    paths = _type_paths(using)
    columns = [
        Column("line", _("Line")),
        Column("code", _("Code"), shown=False),
        Column("currency", _("Currency"), shown=False),
        Column("accounts", _("Accounts"), "count"),
        Column("debit", _("Debit"), "money"),
        Column("credit", _("Credit"), "money"),
        Column("balance", _("Balance"), "money"),
    ]

    def cells(label: str, code: str, currency: str, totals: _Totals) -> dict[str, Any]:
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
    order = _type_order(paths)
    names = {(c.currency, c.role): c.name for c in core}
    currencies = sorted({currency for _r, _t, currency in found} | {c.currency for c in core})
    for currency in currencies:
        total = _Totals()
        for role in CORE_ORDER:
            if (currency, role) not in names:
                continue
            totals = found.get((role, None, currency), _Totals(accounts=1))
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
            bars.append(Bar(_month_label(m), values, period=_day_label(m)))
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
    using = _using(using)
    first, last = _start_of(start), _end_of(end)
    if first > last:
        raise InvalidArgument(
            _("The period starts (%(start)s) after it ends (%(end)s)."), start=first, end=last
        )
    periods = buckets(first, last)
    opening, closing, flows, by_bucket = _movements(using, first, last, periods)
    paths = _type_paths(using)
    columns = [
        Column("account_type", _("Account type")),
        Column("account_type_code", _("Type code"), shown=False),
        Column("currency", _("Currency"), shown=False),
        Column("opening", _("Opening"), "money"),
        *(Column(kind.code, kind.label, "money") for kind in MOVEMENT_KINDS),
        Column("closing", _("Closing"), "money"),
        Column("unexplained", _("Unexplained"), "money"),
    ]
    keys = set(opening) | set(closing) | set(flows)
    rows = []
    order = _type_order(paths)
    for currency in sorted({c for _t, c in keys}):
        total: dict[str, Decimal] = {}
        for type_id in sorted((t for t, c in keys if c == currency), key=order):
            moved = flows.get((type_id, currency), {})
            cells: dict[str, Any] = {
                "opening": opening.get((type_id, currency), ZERO),
                **{kind.code: moved.get(kind.code, ZERO) for kind in MOVEMENT_KINDS},
                "closing": closing.get((type_id, currency), ZERO),
            }
            cells["unexplained"] = cells["closing"] - cells["opening"] - sum(moved.values(), ZERO)
            for key, value in cells.items():
                total[key] = total.get(key, ZERO) + value
            code, label = paths.get(type_id, ("", "#%s" % type_id))
            cells.update(account_type=label, account_type_code=code, currency=currency)
            rows.append(Row(currency, cells))
        total_cells: dict[str, Any] = {
            **total,
            "account_type": str(_("Total")),
            "account_type_code": "",
            "currency": currency,
        }
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
                    period="%s – %s" % (_day_label(bucket.start), _day_label(bucket.end)),
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
    tables = _tables(connection)
    balances, balance_params = _balances_sql(
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
            "sum": _sum(connection, "tr.amount"),
            "transfer": tables["transfer"],
            "account": tables["account"],
            "settlement": tables["settlement"],
        }
    )
    sql = "SELECT 0, b.* FROM (%s) b UNION ALL %s" % (balances, flows)
    boundaries = [_moment(connection, p.end) for p in periods[:-1]]
    params = [*balance_params, *boundaries, _moment(connection, first), _moment(connection, last)]
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

    with _reading(using) as cursor:
        cursor.execute(sql, params)
        for part, *row in cursor.fetchall():
            if not part:
                (_role, type_id, currency), (before, after) = _totals(connection, row, 2)
                if before.accounts:
                    opening[type_id, currency] = before.net
                if after.accounts:
                    closing[type_id, currency] = after.net
                continue
            role, type_id, currency, other_role, other_type, nature, index, total = row[:8]
            amount = _summed(connection, total)
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


# One account's balance over time -------------------------------------------------------


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
    using = using or router.db_for_read(Transaction)
    last = _end_of(end) if end is not None else timezone.now()
    if start is None:
        first_leg = (
            Transaction.objects.using(using)
            .filter(account=account.pk)
            .order_by("created", "pk")
            .values_list("created", flat=True)
            .first()
        )
        first = _start_of(_local_date(min(first_leg or account.created, last)))
    else:
        first = _start_of(start)
    first = min(first, last)
    days = (_local_date(last) - _local_date(first)).days + 1
    if days <= max_points:
        step = "day"
        day = _local_date(first)
        moments = [_end_of(day + datetime.timedelta(days=n)) for n in range(days - 1)] + [last]
    else:
        step = "sample"
        span = last - first
        moments = [first + span * (n + 1) / max_points for n in range(max_points - 1)] + [last]
    connection = connections[using]
    sql = "SELECT %s" % ", ".join(_balance_of(connection) for _m in moments)
    params = []
    for moment in moments:
        params += [account.pk, account.pk, _moment(connection, moment)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    limit = account.credit_limit
    return BalanceHistory(
        account=account,
        start=first,
        end=last,
        points=[(m, _decimal(v) or ZERO) for m, v in zip(moments, row, strict=True)],
        credit_limit=None if limit is None else amounts.raw(account, "credit_limit"),
        step=step,
    )


__all__ = [
    "MOVEMENT_KINDS",
    "BalanceHistory",
    "Kind",
    "Leg",
    "Report",
    "balance_history",
    "buckets",
    "classify",
    "movements",
    "outstanding_balances",
    "trial_balance",
]
