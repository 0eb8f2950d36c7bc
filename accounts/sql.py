"""
The SQL of the write path: the few fixed statements every transfer runs.

A transfer is two round trips on PostgreSQL and four elsewhere:

1. ``SELECT ... FOR UPDATE`` of both accounts, in primary-key order;
2. the writes: the transfer, its two legs and both new balances. PostgreSQL
   runs them as one statement (data-modifying ``WITH`` clauses); MariaDB and
   SQLite have no such thing and run an INSERT, an INSERT and an UPDATE.

Fewer round trips also means the row locks are held for less time, which is
what limits throughput on a busy account.

Rejected alternative: building these with QuerySets on every call.
Compiling a ``select_for_update()``, a model ``save()``, a ``bulk_create()``
and a ``Case``/``When`` update costs about twice the database's own work for
these statements (query compilation, expression resolution, model signals).
The statements never change, so they are built once per database alias and
run through Django's cursor, which keeps Django's transaction handling,
error wrapping and query logging (``assertNumQueries`` sees them). Values go
through each field's ``get_db_prep_save`` and rows come back through the
backend's converters, exactly as the ORM would do it.

Only the locked path (``accounts.posting``) calls these, inside its atomic block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, connections, models
from django.db.models.base import DEFERRED

from . import clock
from .clock import NOW_SQL
from .models import Account, Transaction, Transfer

_cache: dict[tuple[Any, ...], Any] = {}

#: The columns of a leg, in the order the functions below take their values
#: (the transfer's id comes separately).
LEG_FIELDS = ("account", "currency", "amount", "balance_after", "created")


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


#: Statements for at most this many rows are kept; larger ones (batches) are
#: built each time, so that the cache stays small whatever the batch sizes.
CACHED_ROWS = 16


def _cached(key: tuple[Any, ...], build: Any, *, rows: int = 0) -> Any:
    if rows > CACHED_ROWS:
        return build()
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = build()
    return found


def _field(model: type[models.Model], name: str) -> Any:
    return model._meta.get_field(name)


def _insertable(model: type[models.Model]) -> list[Any]:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


# Reading ----------------------------------------------------------------------------


#: The account columns the locking read returns: all but ``metadata``, which
#: no rule reads (up to ``ACCOUNTS_METADATA_MAX_BYTES`` per row, under the lock,
#: for nothing). Locked accounts have it deferred.
LOCKED_FIELDS = [f for f in Account._meta.concrete_fields if f.name != "metadata"]


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
            column = f.get_col(Account._meta.db_table)
            found = connection.ops.get_db_converters(column) + f.get_db_converters(connection)  # type: ignore[attr-defined]
            if found:
                converters.append((n, column, found))
        return converters

    converters = _cached((using, "account converters"), build)
    width = len(LOCKED_FIELDS)
    found = {}
    for row in rows:
        values = list(row[:width])
        for n, column, field_converters in converters:
            value = values[n]
            for converter in field_converters:
                value = converter(value, column, connection)
            values[n] = value
        # A value for every concrete field, the metadata DEFERRED: Django's
        # fast path, which matches no names.
        values.insert(_METADATA_AT, DEFERRED)
        account = Account.from_db(using, ALL_NAMES, values)
        found[account.pk] = account
    return found


#: Every concrete field's attribute name, as ``Model.from_db`` takes them,
#: and where the metadata (not read under the lock) stands among them.
ALL_NAMES = [f.attname for f in Account._meta.concrete_fields]
_METADATA_AT = ALL_NAMES.index("metadata")


def _lock_any(connection: Any, statement: str) -> str:
    """The locking statement with ``= ANY(%s)`` in place of its ``IN (%s, ...)`` list."""
    start = statement.index(" IN (")
    end = statement.index(")", start)
    return statement[:start] + " = ANY(%s::bigint[])" + statement[end + 1 :]


def limit_columns(connection: Any, row: str) -> list[str]:
    """Each period's spending limit of the account ``row`` names (its own, else its type's).

    Three scalar subqueries, in ``accounts.limits.PERIODS`` order; ``NULL``
    where the period has no limit, and for core accounts.
    """
    from .limits import PERIODS
    from .models import SpendingLimit

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
        columns.append("CASE WHEN %s.%s IS NULL THEN COALESCE(%s, %s) END" % (
            row, qn("role"), own, shared
        ))  # fmt: skip
    return columns


def limits_from_rows(using: str, rows: list[Any], at: int) -> dict[int, dict[str, Decimal]]:
    """The limits :func:`limit_columns` read, from column ``at`` of each row, by account."""
    from .limits import PERIODS
    from .models import SpendingLimit

    connection = connections[using]
    field = SpendingLimit._meta.get_field("amount")

    def build() -> tuple[Any, list[Any]]:
        column = field.get_col(SpendingLimit._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)  # type: ignore[attr-defined]
        return column, found

    column, converters = _cached((using, "limit converters"), build)
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
    using: str, ids: list[int], *, nowait: bool = False, limits: bool = False
) -> tuple[dict[int, Account], datetime, dict[int, dict[str, Decimal]]]:
    """``SELECT ... FOR UPDATE`` the accounts, in primary-key order.

    Returns them by pk, the database's time once every lock was granted
    (the latest of the times read with each row; see ``accounts.clock``),
    and with ``limits`` each account's spending limits by period, read in
    the same statement (``{}`` without). With ``nowait`` (and a database
    that has it), a row another transaction holds fails the statement at
    once instead of waiting (see ``locks_busy``).
    """
    connection = connections[using]
    wait = not nowait

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
            ", %s" % ", ".join(limit_columns(connection, table))
            if limits and connection.vendor != "postgresql"
            else "",
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
            select = "WITH locked AS MATERIALIZED (%s) SELECT locked.*, %s%s FROM locked" % (
                select,
                now_sql,
                ", %s" % ", ".join(limit_columns(connection, "locked")) if limits else "",
            )
        return select

    params: list[Any] = list(ids)
    if connection.vendor == "postgresql" and len(ids) > CACHED_ROWS:
        # One array parameter, not one placeholder per account.
        sql = _cached((using, "lock any", wait, limits), lambda: _lock_any(connection, build()))
        params = [array_literal(params)]
    else:
        sql = _cached((using, "lock", len(ids), wait, limits), build, rows=len(ids))
    width = len(LOCKED_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    moments = [row[width] for row in rows if row[width] is not None]
    found = limits_from_rows(using, rows, width + 1) if limits else {}
    return accounts_from_rows(using, rows), clock.from_database(max(moments, default=None)), found


# Statement builders: (SQL, parameters) ------------------------------------------------


def _insert_statement(connection: Any, obj: models.Model) -> tuple[str, list[Any]]:
    """``INSERT INTO <table> (...) VALUES (...)`` for one new row, no RETURNING."""
    model = type(obj)
    fields = _insertable(model)

    def build() -> str:
        qn = connection.ops.quote_name
        return "INSERT INTO %s (%s) VALUES (%s)" % (
            qn(model._meta.db_table),
            ", ".join(qn(f.column) for f in fields),
            ", ".join(["%s"] * len(fields)),
        )

    sql = _cached((connection.alias, "insert", model), build)
    # The instance's own values, not its descriptors: a money field would
    # build a Money only for get_db_prep_save to take its amount again.
    values = obj.__dict__
    return sql, [f.get_db_prep_save(values[f.attname], connection) for f in fields]


def _legs_params(connection: Any, legs: list[tuple[Any, ...]]) -> list[Any]:
    fields = [_field(Transaction, name) for name in LEG_FIELDS]
    return [
        f.get_db_prep_save(value, connection)
        for leg in legs
        for f, value in zip(fields, leg, strict=True)
    ]


def _legs_columns(connection: Any) -> str:
    qn = connection.ops.quote_name
    names = ("transfer", *LEG_FIELDS)
    return ", ".join(qn(_field(Transaction, name).column) for name in names)


def _ledger_statement(connection: Any, rows: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
    """One ``UPDATE`` setting each account's columns computed under the lock."""
    ids = sorted(rows)
    names = sorted({name for row in rows.values() for name in row})
    # The statement depends on which columns each row sets, not on the values.
    shape = tuple(tuple(name in rows[pk] for name in names) for pk in ids)

    def build() -> str:
        qn = connection.ops.quote_name
        pk = qn(Account._meta.pk.column)
        assignments = []
        for name in names:
            column = qn(_field(Account, name).column)
            cases = " ".join(
                "WHEN %s = %%s THEN %%s" % pk for account_id in ids if name in rows[account_id]
            )
            assignments.append("%s = CASE %s ELSE %s END" % (column, cases, column))
        return "UPDATE %s SET %s WHERE %s IN (%s)" % (
            qn(Account._meta.db_table),
            ", ".join(assignments),
            pk,
            ", ".join(["%s"] * len(ids)),
        )

    sql = _cached((connection.alias, "ledger", tuple(names), shape), build, rows=len(ids))
    params: list[Any] = []
    for name in names:
        field = _field(Account, name)
        for account_id in ids:
            if name in rows[account_id]:
                params += [account_id, field.get_db_prep_save(rows[account_id][name], connection)]
    return sql, params + ids


def _execute(connection: Any, sql: str, params: list[Any], *, result: str = "") -> Any:
    """Run one statement; return its first row (``result="row"``), the new row's id
    (``result="lastrowid"``), or nothing."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if result == "row":
            return cursor.fetchone()
        if result == "lastrowid":
            return cursor.lastrowid
        return None


# Writing ------------------------------------------------------------------------------


def _saved(obj: models.Model, pk: Any, using: str) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = using


def insert(using: str, obj: models.Model) -> None:
    """``INSERT`` one new row (a Transfer or Hold) and set its primary key."""
    connection = connections[using]
    sql, params = _insert_statement(connection, obj)
    if connection.features.can_return_columns_from_insert:
        sql += " RETURNING %s" % connection.ops.quote_name(type(obj)._meta.pk.column)
        pk = _execute(connection, sql, params, result="row")[0]
    else:
        pk = _execute(connection, sql, params, result="lastrowid")
    _saved(obj, pk, using)


def insert_transfers(
    using: str, transfers: Sequence[Transfer], legs: list[tuple[Any, ...]]
) -> None:
    """``INSERT`` new transfers (a batch's) and their legs; set the transfers' pks.

    Each leg is a tuple: its transfer's position in ``transfers``, then its
    values in ``LEG_FIELDS`` order. PostgreSQL: one statement, one array per
    column however many rows (its two-legs guard checks each statement: a
    transfer and its legs must arrive together, migration 0015). Elsewhere
    the transfers in one ``INSERT``, their new keys by ``RETURNING`` where
    the database has it for a multi-row insert (MariaDB 10.5+, SQLite
    3.35+), else from one ``SELECT`` by their unique references, then the
    legs in one ``INSERT``.
    """
    if not transfers:
        return
    connection = connections[using]
    if connection.vendor == "postgresql":
        _insert_transfers_unnest(connection, using, transfers, legs)
        return
    fields = _insertable(Transfer)
    qn = connection.ops.quote_name
    row = "(%s)" % ", ".join(["%s"] * len(fields))
    statement = "INSERT INTO %s (%s) VALUES %s" % (
        qn(Transfer._meta.db_table),
        ", ".join(qn(f.column) for f in fields),
        ", ".join([row] * len(transfers)),
    )
    params = [
        f.get_db_prep_save(obj.__dict__[f.attname], connection)
        for obj in transfers
        for f in fields
    ]
    by_reference = {obj.reference: obj for obj in transfers}
    pk, reference = qn(Transfer._meta.pk.column), qn(_field(Transfer, "reference").column)
    with connection.cursor() as cursor:
        if connection.features.can_return_rows_from_bulk_insert:
            cursor.execute("%s RETURNING %s, %s" % (statement, pk, reference), params)
        else:
            cursor.execute(statement, params)
            cursor.execute(
                "SELECT %s, %s FROM %s WHERE %s IN (%s)"
                % (
                    pk,
                    reference,
                    qn(Transfer._meta.db_table),
                    reference,
                    ", ".join(["%s"] * len(transfers)),
                ),
                list(by_reference),
            )
        for new_pk, new_reference in cursor.fetchall():
            _saved(by_reference[new_reference], new_pk, using)
    if legs:
        insert_legs(using, None, [(transfers[leg[0]].pk, *leg[1:]) for leg in legs])


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array in its text form (``{1.00,NULL,"a \\"b\\""}``), cast by the statement.

    Faster than the driver's own array adaptation by an order of magnitude:
    the values are Decimals, integers, aware datetimes, strings (already
    checked to hold no NUL), JSON objects and ``None``. A column's values
    are of one type (or ``None``): its text form is chosen once.
    """
    kinds = set(map(type, values))
    kinds.discard(type(None))
    text = _ELEMENT_TEXT.get(kinds.pop()) if len(kinds) == 1 else _element
    if text is None:
        text = _element
    return "{%s}" % ",".join(["NULL" if value is None else text(value) for value in values])


def _quoted(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _element(value: Any) -> str:
    """One array element's text, whatever its type."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return '"%s"' % value.isoformat()
    if isinstance(value, (dict, list)):
        # JSON (metadata), for a jsonb[] array.
        return _quoted(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return _quoted(str(value))


#: The text of an element by its exact type, for the common columns.
_ELEMENT_TEXT: dict[type, Any] = {
    int: str,
    Decimal: str,
    str: _quoted,
    datetime: lambda value: '"%s"' % value.isoformat(),
    date: date.isoformat,
}


def _array_types(connection: Any, fields: list[Any]) -> list[str]:
    """The PostgreSQL array type of each field's column (``numeric(19, 4)[]``, ...)."""
    return ["%s[]" % f.db_type(connection) for f in fields]


def _insert_transfers_unnest(
    connection: Any, using: str, transfers: Sequence[Transfer], legs: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL: the transfers and their legs in one statement, one array per column.

    A statement with one placeholder per value costs the driver and the
    server more to parse than to run once a batch has hundreds of rows; one
    array parameter per column keeps it the same few parameters. Each leg
    finds its transfer by the transfer's reference.
    """
    qn = connection.ops.quote_name
    fields = _insertable(Transfer)
    leg_fields = [_field(Transaction, name) for name in LEG_FIELDS]
    reference = qn(_field(Transfer, "reference").column)

    def build() -> str:
        arrays = ", ".join("%%s::%s" % kind for kind in _array_types(connection, fields))
        leg_arrays = ", ".join(
            "%%s::%s" % kind
            for kind in _array_types(connection, [_field(Transfer, "reference"), *leg_fields])
        )
        leg_names = ", ".join(qn(f.column) for f in leg_fields)
        return (
            "WITH new_transfers AS (INSERT INTO %s (%s) SELECT * FROM unnest(%s) "
            "RETURNING %s, %s), "
            "new_legs AS (INSERT INTO %s (%s) SELECT t.%s, %s "
            "FROM unnest(%s) AS leg(%s, %s) JOIN new_transfers t USING (%s)) "
            "SELECT %s, %s FROM new_transfers"
        ) % (
            qn(Transfer._meta.db_table),
            ", ".join(qn(f.column) for f in fields),
            arrays,
            qn(Transfer._meta.pk.column),
            reference,
            qn(Transaction._meta.db_table),
            _legs_columns(connection),
            qn(Transfer._meta.pk.column),
            ", ".join("leg.%s" % qn(f.column) for f in leg_fields),
            leg_arrays,
            reference,
            leg_names,
            reference,
            qn(Transfer._meta.pk.column),
            reference,
        )

    statement = _cached((using, "insert transfers"), build)
    # The instances' own values: plain Decimals, aware datetimes, strings,
    # integers (get_db_prep_save would only return them).
    columns = [array_literal([obj.__dict__[f.attname] for obj in transfers]) for f in fields]
    leg_rows = [(transfers[leg[0]].reference, *leg[1:]) for leg in legs]
    columns += [array_literal(list(column)) for column in zip(*leg_rows, strict=True)]
    if not leg_rows:
        columns += [array_literal([])] * (len(LEG_FIELDS) + 1)
    by_reference = {obj.reference: obj for obj in transfers}
    with connection.cursor() as cursor:
        cursor.execute(statement, columns)
        for new_pk, new_reference in cursor.fetchall():
            _saved(by_reference[new_reference], new_pk, using)


def insert_legs(using: str, transfer_id: int | None, legs: list[tuple[Any, ...]]) -> None:
    """``INSERT`` legs in one statement: a transfer's, or (``transfer_id=None``) a batch's.

    Each leg is a tuple of values in ``LEG_FIELDS`` order (the account as its
    primary key, amounts as Decimals), preceded by its transfer's primary
    key when ``transfer_id`` is ``None``; no model instances are built.
    """
    connection = connections[using]

    def build() -> str:
        row = "(%s)" % ", ".join(["%s"] * (len(LEG_FIELDS) + 1))
        return "INSERT INTO %s (%s) VALUES %s" % (
            connection.ops.quote_name(Transaction._meta.db_table),
            _legs_columns(connection),
            ", ".join([row] * len(legs)),
        )

    sql = _cached((using, "legs", len(legs)), build, rows=len(legs))
    if transfer_id is None:
        transfers = [leg[0] for leg in legs]
        legs = [leg[1:] for leg in legs]
    else:
        transfers = [transfer_id] * len(legs)
    params = _legs_params(connection, legs)
    width = len(LEG_FIELDS)
    rows = [params[i : i + width] for i in range(0, len(params), width)]
    _execute(
        connection,
        sql,
        [value for owner, row in zip(transfers, rows, strict=True) for value in [owner, *row]],
    )


def _ledger_unnest(connection: Any, rows: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
    """PostgreSQL: set the same columns of many accounts from arrays, in one ``UPDATE``."""
    ids = sorted(rows)
    names = sorted({name for row in rows.values() for name in row})
    fields = [_field(Account, name) for name in names]
    qn = connection.ops.quote_name

    def build() -> str:
        pk = qn(Account._meta.pk.column)
        kinds = _array_types(connection, [Account._meta.pk, *fields])
        return "UPDATE %s AS a SET %s FROM unnest(%s) AS v(%s) WHERE a.%s = v.%s" % (
            qn(Account._meta.db_table),
            ", ".join("%s = v.%s" % (qn(f.column), qn(f.column)) for f in fields),
            ", ".join("%%s::%s" % kind for kind in kinds),
            ", ".join([pk, *(qn(f.column) for f in fields)]),
            pk,
            pk,
        )

    statement = _cached((connection.alias, "ledger unnest", tuple(names)), build)
    columns = [array_literal(ids)] + [
        array_literal([rows[pk][f.name] for pk in ids]) for f in fields
    ]
    return statement, columns


def write_ledger_fields(using: str, rows: dict[int, dict[str, Any]]) -> None:
    """Set balances / held amounts (and a status) computed under the lock, in one ``UPDATE``.

    ``rows`` maps an account's primary key to the columns to set, e.g.
    ``{7: {"balance": Decimal("5.00")}, 9: {"balance": ..., "held": ...}}``.
    """
    connection = connections[using]
    uniform = len({frozenset(row) for row in rows.values()}) == 1
    if connection.vendor == "postgresql" and len(rows) > CACHED_ROWS and uniform:
        _execute(connection, *_ledger_unnest(connection, rows))
        return
    _execute(connection, *_ledger_statement(connection, rows))


def write_transfer(
    using: str,
    transfer: models.Model,
    legs: list[tuple[Any, ...]],
    rows: dict[int, dict[str, Any]],
) -> None:
    """Insert ``transfer`` and its ``legs`` and write the accounts' ``rows``; set its pk.

    One statement on PostgreSQL, three elsewhere (see the module's docstring).
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        insert(using, transfer)
        insert_legs(using, transfer.pk, legs)
        write_ledger_fields(using, rows)
        return
    insert_sql, insert_params = _insert_statement(connection, transfer)
    ledger_sql, ledger_params = _ledger_statement(connection, rows)

    def build() -> str:
        qn = connection.ops.quote_name
        # Typed placeholders: VALUES would otherwise guess the types.
        typed = "(%s::bigint, %s, %s::numeric, %s::numeric, %s::timestamptz)"
        return (
            "WITH new_transfer AS (%s RETURNING %s), "
            "new_legs AS (INSERT INTO %s (%s) SELECT new_transfer.%s, leg.* "
            "FROM new_transfer, (VALUES %s) AS leg), "
            "new_balances AS (%s) "
            "SELECT %s FROM new_transfer"
        ) % (
            insert_sql,
            qn(transfer._meta.pk.column),
            qn(Transaction._meta.db_table),
            _legs_columns(connection),
            qn(transfer._meta.pk.column),
            ", ".join([typed] * len(legs)),
            ledger_sql,
            qn(transfer._meta.pk.column),
        )

    sql = _cached((using, "transfer", len(legs), ledger_sql), build)
    params = insert_params + _legs_params(connection, legs) + ledger_params
    _saved(transfer, _execute(connection, sql, params, result="row")[0], using)
