"""
The locking read: ``SELECT ... FOR UPDATE`` of the accounts an operation
touches, in primary-key order, with the database's clock and (for a debit)
the spending limits, read in the same statement, as ``Account`` rows.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, connections

from .. import clock
from ..clock import NOW_SQL
from ..models import Account
from .arrays import array_literal
from .base import CACHED_ROWS, built, cached, read_converters
from .prepared import run as run_prepared
from .prepared import usable as may_prepare

#: Errors a ``NOWAIT`` lock raises when the row is taken: PostgreSQL's
#: lock_not_available, MariaDB's lock wait timeout, MySQL 8's ER_LOCK_NOWAIT.
_BUSY_SQLSTATES = {"55P03"}


_BUSY_MYSQL_CODES = {1205, 3572}


def locks_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``NOWAIT`` lock finding its row locked by another transaction."""
    if not isinstance(exc, DatabaseError):
        return False
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(cause, "args", ())
    return bool(args) and args[0] in _BUSY_MYSQL_CODES


#: The account columns the locking read returns: all but those no rule and
#: no write reads, which cost their transfer and their parsing under the
#: lock for nothing: ``metadata`` (up to ``ACCOUNTS_METADATA_MAX_BYTES`` per
#: row), ``description``, and the two timestamps (each parsed in Python, for
#: every account a batch locks). Locked accounts have them deferred.
UNREAD_FIELDS = frozenset({"metadata", "description", "created", "credit_limit_changed_at"})
LOCKED_FIELDS = [f for f in Account._meta.concrete_fields if f.name not in UNREAD_FIELDS]


def account_columns(connection: Any) -> str:
    """The account table's columns, quoted, in the order :func:`accounts_from_rows` reads."""
    qn = connection.ops.quote_name
    return ", ".join(qn(f.column) for f in LOCKED_FIELDS)


def accounts_from_rows(using: str, rows: list[Any]) -> dict[int, Account]:
    """``Account`` instances from raw rows that start with :func:`account_columns`.

    Values go through the backend's and the fields' converters, as the ORM
    would do it; columns after the account's own are ignored.
    """
    connection = connections[using]

    def build() -> list[tuple[int, Any, list[Any]]]:
        # Only the columns that have converters (none on PostgreSQL).
        converters = []
        for n, f in enumerate(LOCKED_FIELDS):
            column, found = read_converters(connection, f)
            if found:
                converters.append((n, column, found))
        return converters

    converters = cached((using, "account converters"), build)
    width = len(LOCKED_FIELDS)
    found = {}
    for row in rows:
        values = list(row[:width])
        for n, column, field_converters in converters:
            value = values[n]
            for converter in field_converters:
                value = converter(value, column, connection)
            values[n] = value
        # The columns not read are deferred. What Account.from_db does
        # for the ORM, without Model.__init__ (see sql.base.built).
        loaded = dict(zip(LOCKED_NAMES, values, strict=True))
        account = built(Account, loaded, using)
        account._remember(loaded=loaded)
        found[account.pk] = account
    return found


#: The attribute names of :data:`LOCKED_FIELDS`, in the order of their columns.
LOCKED_NAMES = [f.attname for f in LOCKED_FIELDS]


def _lock_any(connection: Any, statement: str) -> str:
    """The locking statement with ``= ANY(%s)`` in place of its ``IN (%s, ...)`` list."""
    start = statement.index(" IN (")
    end = statement.index(")", start)
    return statement[:start] + " = ANY(%s::bigint[])" + statement[end + 1 :]


def limit_columns(connection: Any, row: str) -> list[str]:
    """Each period's spending limit of the account ``row`` names (its own, else its type's).

    Three scalar subqueries, in ``accounts.limits.PERIODS`` order; ``NULL``
    where the period has no limit, and for core accounts. A ledger with no
    spending limit at all skips them: whether the table has a row is asked
    once per statement (a ``SELECT`` that names no row of the statement's
    own), and only then is each account's looked up.
    """
    from ..limits import PERIODS
    from ..models import SpendingLimit

    qn = connection.ops.quote_name
    table = qn(SpendingLimit._meta.db_table)
    amount, period = qn("amount"), qn("period")
    account = qn(SpendingLimit._meta.get_field("account").column)
    account_type = qn(SpendingLimit._meta.get_field("account_type").column)
    columns = []
    for name in PERIODS:
        own = "(SELECT l.%s FROM %s l WHERE l.%s = %s.%s AND l.%s = '%s')" % (
            amount, table, account, row, qn("id"), period, name
        )  # fmt: skip
        shared = "(SELECT l.%s FROM %s l WHERE l.%s = %s.%s AND l.%s = '%s')" % (
            amount, table, account_type, row, qn("account_type_id"), period, name
        )  # fmt: skip
        columns.append(
            "CASE WHEN %s.%s IS NULL AND EXISTS (SELECT 1 FROM %s) THEN COALESCE(%s, %s) END"
            % (row, qn("role"), table, own, shared)
        )
    return columns


def limits_from_rows(using: str, rows: list[Any], at: int) -> dict[int, dict[str, Decimal]]:
    """The limits :func:`limit_columns` read, from column ``at`` of each row, by account."""
    from ..limits import PERIODS
    from ..models import SpendingLimit

    connection = connections[using]
    field = SpendingLimit._meta.get_field("amount")

    def build() -> tuple[Any, list[Any]]:
        return read_converters(connection, field)

    column, converters = cached((using, "limit converters"), build)
    found: dict[int, dict[str, Decimal]] = {}
    for row in rows:
        limits = {}
        for offset, period in enumerate(PERIODS):
            value = row[at + offset]
            if value is None:
                continue
            for converter in converters:
                value = converter(value, column, connection)
            limits[period] = value
        found[row[0]] = limits
    return found


def lock_accounts(
    using: str,
    ids: list[int],
    *,
    nowait: bool = False,
    limits: bool | Collection[int] = False,
    prepare: bool = False,
) -> tuple[dict[int, Account], datetime, dict[int, dict[str, Decimal]]]:
    """``SELECT ... FOR UPDATE`` the accounts, in primary-key order.

    Returns them by pk, the database's time once every lock was granted
    (the latest of the times read with each row; see ``accounts.clock``),
    and with ``limits`` each account's spending limits by period, read in
    the same statement (``{}`` without): every account's, or with a
    collection of keys only those accounts' (the ones debited; the others
    have none read, and ``{}``). With ``nowait`` (and a database
    that has it), a row another transaction holds fails the statement at
    once instead of waiting (see ``locks_busy``). ``prepare``: on PostgreSQL,
    the statement for many accounts (one array of keys) is prepared once per
    server session (``accounts.sql.prepared``).
    """
    from ..limits import PERIODS

    connection = connections[using]
    wait = not nowait
    debited = None if isinstance(limits, bool) else sorted(limits)
    if debited == []:
        limits, debited = False, None
    many = connection.vendor == "postgresql" and len(ids) > CACHED_ROWS

    def limit_list(row: str) -> str:
        columns = limit_columns(connection, row)
        if debited is not None:
            keys = "= ANY(%s::bigint[])" if many else "IN (%s)" % ", ".join(["%s"] * len(debited))
            pk = "%s.%s" % (row, connection.ops.quote_name(Account._meta.pk.column))
            columns = ["CASE WHEN %s %s THEN %s END" % (pk, keys, column) for column in columns]
        return ", %s" % ", ".join(columns)

    def build() -> str:
        qn = connection.ops.quote_name
        table = qn(Account._meta.db_table)
        pk = qn(Account._meta.pk.column)
        # Every row: the account's columns, the clock (NULL on SQLite: the
        # process's clock is read), then the limits if asked for.
        now_sql = NOW_SQL.get(connection.vendor) or "NULL"
        select = "SELECT %s%s%s FROM %s WHERE %s IN (%s) ORDER BY %s" % (
            account_columns(connection),
            # The clock of each row is read as the row is locked, except on
            # PostgreSQL, where the scan computes its columns before the lock
            # is taken: there the locked rows are read again, below.
            ", %s" % now_sql if connection.vendor != "postgresql" else "",
            limit_list(table) if limits and connection.vendor != "postgresql" else "",
            table,
            pk,
            ", ".join(["%s"] * len(ids)),
            pk,
        )
        if connection.features.has_select_for_update:
            select += " FOR UPDATE"
            if not wait and connection.features.has_select_for_update_nowait:
                select += " NOWAIT"
        if connection.vendor == "postgresql":
            # The clock once, on the first row: the latest of the times read
            # as each locked row comes out of the CTE (a window over all of
            # them, so read once every lock is granted); NULL on the others.
            select = (
                "WITH locked AS MATERIALIZED (%s) SELECT locked.*, "
                "CASE WHEN row_number() OVER () = 1 THEN max(%s) OVER () END%s FROM locked"
                % (select, now_sql, limit_list("locked") if limits else "")
            )
        return select

    params: list[Any] = list(ids)
    # Which limits are read, as the statement's shape: all, none, or those
    # of so many accounts.
    kind: object = bool(limits) if debited is None else ("some", len(debited))
    if many:
        # One array parameter, not one placeholder per account.
        kind = kind if debited is None else "some"
        sql = cached((using, "lock any", wait, kind), lambda: _lock_any(connection, build()))
        params = [array_literal(params)]
        if debited is not None:
            # The limits follow the locking read (see build()).
            params += [array_literal(debited)] * len(PERIODS)
    else:
        sql = cached((using, "lock", len(ids), wait, kind), build, rows=len(ids))
        if debited is not None:
            debited_params = debited * len(PERIODS)
            # The limits come before the keys, except on PostgreSQL.
            params = (
                params + debited_params
                if connection.vendor == "postgresql"
                else (debited_params + params)
            )
    width = len(LOCKED_FIELDS)
    if prepare and len(ids) > CACHED_ROWS and may_prepare(connection):
        rows = run_prepared(connection, sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    moments = [row[width] for row in rows if row[width] is not None]
    found = limits_from_rows(using, rows, width + 1) if limits else {}
    return accounts_from_rows(using, rows), clock.from_database(max(moments, default=None)), found
