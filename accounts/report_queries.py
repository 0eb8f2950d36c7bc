"""
The SQL behind the reports: balances at moments, summed exactly, by group.

Shared by the report families (``report_balances``, ``report_movements``,
``report_history``); see ``accounts.reports`` for where the figures come
from. Nothing here is public API.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils.translation import gettext_lazy as _

from .collection_models import Settlement
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
#: The columns' precision: amounts are whole multiples of this.
_QUANTUM = 4

#: A number as a driver returns it for a SUM or a money column: SQLite gives
#: an int for an integer SUM and a float for a decimal column.
Number: TypeAlias = Decimal | int | float | str
#: A query parameter: what ``adapt_datetimefield_value`` makes of a moment, or a key.
Param: TypeAlias = int | str | None

#: A LIMIT no table reaches: a derived table with a LIMIT is computed once, not
#: merged into the query around it, which would repeat its subqueries (one
#: index seek per account) for every reference to their results. PostgreSQL,
#: MariaDB and SQLite all honour it.
_FENCE = 10**15


def alias(using: str | None) -> str:
    """The database a report reads: ``using``, or the router's choice for reading legs."""
    return using or router.db_for_read(Transaction)


def table_names(connection: BaseDatabaseWrapper) -> dict[str, str]:
    """The quoted names of the tables the reports read, by short name."""
    qn = connection.ops.quote_name
    return {
        "account": qn(Account._meta.db_table),
        "leg": qn(Transaction._meta.db_table),
        "transfer": qn(Transfer._meta.db_table),
        "settlement": qn(Settlement._meta.db_table),
    }


def exact_sum(connection: BaseDatabaseWrapper, expression: str) -> str:
    """An exact SUM of a money expression (see ``accounts.reports``: exact on SQLite too)."""
    if connection.vendor == "sqlite":
        return "SUM(CAST(ROUND((%s) * %d) AS INTEGER))" % (expression, 10**_QUANTUM)
    return "SUM(%s)" % expression


def summed(connection: BaseDatabaseWrapper, value: Number | None) -> Decimal:
    """What :func:`exact_sum` returned, as an exact Decimal."""
    if value is None:
        return ZERO
    if connection.vendor == "sqlite":
        return Decimal(int(value)).scaleb(-_QUANTUM)
    return Decimal(value)


def stored_decimal(value: Number | None) -> Decimal | None:
    """A money column read without the ORM, as the Decimal it stores.

    SQLite returns a REAL for a decimal column: its shortest representation
    is the stored value, which never has more than 15 significant digits.
    """
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(Decimal(1).scaleb(-_QUANTUM))
    return Decimal(value)


def _balance_at(connection: BaseDatabaseWrapper) -> str:
    """SQL for the balance at a moment (one ``%s``) of each account ``a``; NULL before
    its first leg. PostgreSQL and SQLite only (see :func:`balances_sql` for MariaDB).

    "The balance_after of the account's latest leg at or before the moment":
    the first row of a backward scan of the (account, created, id) index from
    the moment, one index seek.
    """
    return (
        "(SELECT l.balance_after FROM %s l WHERE l.account_id = a.id AND l.created <= %%s "
        "ORDER BY l.created DESC, l.id DESC LIMIT 1)" % table_names(connection)["leg"]
    )


def _balance_of(connection: BaseDatabaseWrapper) -> str:
    """SQL for one account's balance at a moment, NULL before its first leg.

    Three parameters: the account, the account again, the moment. Written as
    ``Account.balance_at`` is, the leg at the latest moment found by an
    index-only seek: the form every backend plans as a seek, however long
    the account's history (MariaDB walks the newer legs of a busy account
    for the other).
    """
    leg = table_names(connection)["leg"]
    return (
        "(SELECT l.balance_after FROM %(leg)s l WHERE l.account_id = %%s AND l.created = "
        "(SELECT m.created FROM %(leg)s m WHERE m.account_id = %%s AND m.created <= %%s "
        "ORDER BY m.created DESC LIMIT 1) ORDER BY l.id DESC LIMIT 1)" % {"leg": leg}
    )


def balances_of(
    cursor: CursorWrapper, pairs: list[tuple[int, datetime.datetime]]
) -> list[Decimal]:
    """The balance of each (account, moment) of ``pairs``, zero before the account's first
    leg. One query, with one index seek per pair: the account is given, so a busy
    account's history is never walked.
    """
    if not pairs:
        return []
    connection: BaseDatabaseWrapper = cursor.db
    sql = "SELECT %s" % ", ".join(_balance_of(connection) for _pair in pairs)
    params: list[Param] = []
    for pk, moment in pairs:
        params += [pk, pk, moment_param(connection, moment)]
    cursor.execute(sql, params)
    return [stored_decimal(value) or ZERO for value in cursor.fetchone()]


def moment_param(connection: BaseDatabaseWrapper, value: datetime.datetime) -> Param:
    """``value`` as a parameter of a raw query on ``connection``."""
    return connection.ops.adapt_datetimefield_value(value)


@contextmanager
def reading(using: str) -> Iterator[CursorWrapper]:
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
class Totals:
    """Balances at a moment, summed over a group of accounts."""

    accounts: int = 0
    in_credit: int = 0
    credit: Decimal = ZERO
    in_debt: int = 0
    debt: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.credit + self.debt

    def add(self, other: Totals) -> None:
        self.accounts += other.accounts
        self.in_credit += other.in_credit
        self.credit += other.credit
        self.in_debt += other.in_debt
        self.debt += other.debt


#: (role, account type id, currency): role None for customer accounts, which
#: are grouped by type; core accounts are grouped by role (one per currency).
Group = tuple[str | None, int | None, str]


def balances_sql(
    connection: BaseDatabaseWrapper, moments: list[datetime.datetime], *, customers_only: bool
) -> tuple[str, list[Param]]:
    """Every account's balance at each of ``moments``, summed by group: (SQL, params).

    Columns: role, type, currency, NULL (see ``report_movements``), then per
    moment the accounts, those in credit, those in debt, what the first are
    owed and what the second owe.
    An account counts from its creation or its first leg, whichever is first.
    """
    tables = table_names(connection)
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
            exact_sum(connection, "CASE WHEN %s > 0 THEN %s ELSE 0 END" % (b, b)),
            exact_sum(connection, "CASE WHEN %s < 0 THEN %s ELSE 0 END" % (b, b)),
        ]
    sql = (
        "SELECT x.role, x.type, x.currency, NULL AS other, %s FROM (%s LIMIT %d) x "
        "GROUP BY x.role, x.type, x.currency" % (", ".join(outer), accounts, _FENCE)
    )
    adapted = [moment_param(connection, m) for m in moments]
    return sql, adapted + adapted


def read_totals(
    connection: BaseDatabaseWrapper, row: Sequence[Any], count: int
) -> tuple[Group, list[Totals]]:
    """Read a row of :func:`balances_sql` for ``count`` moments (as the driver returns it)."""
    role, type_id, currency, _other, *values = row
    found = []
    for i in range(count):
        accounts, in_credit, in_debt, credit, debt = values[5 * i : 5 * i + 5]
        found.append(
            Totals(
                accounts=int(accounts or 0),
                in_credit=int(in_credit or 0),
                credit=summed(connection, credit),
                in_debt=int(in_debt or 0),
                debt=summed(connection, debt),
            )
        )
    return (role, type_id, currency), found


def balances_at(
    cursor: CursorWrapper, moment: datetime.datetime, *, customers_only: bool
) -> dict[Group, Totals]:
    """Every account's balance at ``moment`` (inclusive), summed by group. One query."""
    connection: BaseDatabaseWrapper = cursor.db
    sql, params = balances_sql(connection, [moment], customers_only=customers_only)
    found: dict[Group, Totals] = {}
    cursor.execute(sql, params)
    for row in cursor.fetchall():
        group, (totals,) = read_totals(connection, row, 1)
        if totals.accounts:
            found[group] = totals
    return found


@dataclass(frozen=True)
class CoreAccount:
    """What the reports need of a core account."""

    pk: int
    role: str
    currency: str
    name: str


def core_accounts(using: str) -> list[CoreAccount]:
    """The core accounts, by currency. One query."""
    return [
        CoreAccount(pk, role, currency, name)
        for pk, role, currency, name in Account.objects.using(using)
        .filter(role__isnull=False)
        .order_by("currency", "pk")
        .values_list("pk", "role", "currency", "name")
    ]


def core_balances(
    cursor: CursorWrapper, core: list[CoreAccount], moments: list[datetime.datetime]
) -> dict[tuple[str, str], list[Decimal]]:
    """Each core account's balance at each of ``moments``, by (currency, role). One query."""
    values = balances_of(cursor, [(account.pk, moment) for account in core for moment in moments])
    count = len(moments)
    return {
        (account.currency, account.role): values[index * count : (index + 1) * count]
        for index, account in enumerate(core)
    }


# Labels of lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TypePaths:
    """The account types, to label and order the lines of a report by account type."""

    #: (code, "Parent / Child" name) of every account type, and of "no type".
    paths: dict[int | None, tuple[str, str]]

    def lines(self, type_ids: Iterable[int | None]) -> list[tuple[int | None, str, str]]:
        """(type, code, name) of each of ``type_ids``, by name, "no type" last."""

        def order(type_id: int | None) -> tuple[bool, str, int]:
            return (type_id is None, self.paths.get(type_id, ("", ""))[1].lower(), type_id or 0)

        return [
            (type_id, *self.paths.get(type_id, ("", "#%s" % type_id)))
            for type_id in sorted(type_ids, key=order)
        ]


def type_paths(using: str) -> TypePaths:
    """The account types' codes and names. One query."""
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
    return TypePaths(paths)
