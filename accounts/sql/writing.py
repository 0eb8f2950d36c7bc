"""
The writes: new rows (a transfer and its legs, a batch's transfers, a hold,
a batch) and the columns of locked accounts computed under the lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models

from ..models import Account, Batch, Transaction, Transfer
from .arrays import ledger_unnest, write_batch_unnest
from .base import (
    CACHED_ROWS,
    LEG_FIELDS,
    cached,
    db_values,
    execute,
    field,
    insert_statement,
    insertable,
    legs_columns,
    legs_params,
    saved,
)


def ledger_statement(connection: Any, rows: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
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
            column = qn(field(Account, name).column)
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

    sql = cached((connection.alias, "ledger", tuple(names), shape), build, rows=len(ids))
    params: list[Any] = []
    for name in names:
        setting = [account_id for account_id in ids if name in rows[account_id]]
        values = db_values(connection, field(Account, name), [rows[pk][name] for pk in setting])
        for account_id, value in zip(setting, values, strict=True):
            params += [account_id, value]
    return sql, params + ids


def insert(using: str, obj: models.Model) -> None:
    """``INSERT`` one new row (a Transfer or Hold) and set its primary key."""
    connection = connections[using]
    sql, params = insert_statement(connection, obj)
    if connection.features.can_return_columns_from_insert:
        sql += " RETURNING %s" % connection.ops.quote_name(type(obj)._meta.pk.column)
        pk = execute(connection, sql, params, result="row")[0]
    else:
        pk = execute(connection, sql, params, result="lastrowid")
    saved(obj, pk, using)


def write_batch(
    using: str,
    batch: Batch,
    transfers: Sequence[Transfer],
    legs: list[tuple[Any, ...]],
    rows: dict[int, dict[str, Any]],
    names: Sequence[str],
    *,
    prepare: bool = False,
) -> None:
    """``INSERT`` a batch, its transfers and their legs, and set the accounts' columns.

    Sets the primary keys of the batch and its transfers, and each
    transfer's ``batch_id``. Each leg is a tuple: its transfer's position in
    ``transfers``, then its values in ``LEG_FIELDS`` order; ``rows`` maps an
    account's primary key to its ``names`` columns. PostgreSQL: one
    statement, one array per column however many rows
    (``write_batch_unnest``; prepared with ``prepare``). Elsewhere the
    batch, then the transfers in one ``INSERT``, their new keys by
    ``RETURNING`` where the database has it for a multi-row insert (MariaDB
    10.5+, SQLite 3.35+), else from one ``SELECT`` by their unique
    references, the legs in one ``INSERT``, and the accounts in one
    ``UPDATE``.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        write_batch_unnest(connection, using, batch, transfers, legs, rows, names, prepare=prepare)
        return
    insert(using, batch)
    for transfer in transfers:
        transfer.batch_id = batch.pk
    if transfers:
        _insert_transfers(connection, using, transfers, legs)
    if rows:
        write_ledger_fields(using, rows)


def _insert_transfers(
    connection: Any, using: str, transfers: Sequence[Transfer], legs: list[tuple[Any, ...]]
) -> None:
    """MariaDB and SQLite: a batch's transfers and their legs (see :func:`write_batch`)."""
    fields = insertable(Transfer)
    qn = connection.ops.quote_name
    row = "(%s)" % ", ".join(["%s"] * len(fields))
    statement = "INSERT INTO %s (%s) VALUES %s" % (
        qn(Transfer._meta.db_table),
        ", ".join(qn(f.column) for f in fields),
        ", ".join([row] * len(transfers)),
    )
    columns = [
        db_values(connection, f, [obj.__dict__[f.attname] for obj in transfers]) for f in fields
    ]
    params = [value for line in zip(*columns, strict=True) for value in line]
    by_reference = {obj.reference: obj for obj in transfers}
    pk, reference = qn(Transfer._meta.pk.column), qn(field(Transfer, "reference").column)
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
            saved(by_reference[new_reference], new_pk, using)
    if legs:
        insert_legs(using, None, [(transfers[leg[0]].pk, *leg[1:]) for leg in legs])


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
            legs_columns(connection),
            ", ".join([row] * len(legs)),
        )

    sql = cached((using, "legs", len(legs)), build, rows=len(legs))
    if transfer_id is None:
        transfers = [leg[0] for leg in legs]
        legs = [leg[1:] for leg in legs]
    else:
        transfers = [transfer_id] * len(legs)
    params = legs_params(connection, legs)
    width = len(LEG_FIELDS)
    rows = [params[i : i + width] for i in range(0, len(params), width)]
    execute(
        connection,
        sql,
        [value for owner, row in zip(transfers, rows, strict=True) for value in [owner, *row]],
    )


def write_ledger_fields(using: str, rows: dict[int, dict[str, Any]]) -> None:
    """Set balances / held amounts (and a status) computed under the lock, in one ``UPDATE``.

    ``rows`` maps an account's primary key to the columns to set, e.g.
    ``{7: {"balance": Decimal("5.00")}, 9: {"balance": ..., "held": ...}}``.
    """
    connection = connections[using]
    uniform = len({frozenset(row) for row in rows.values()}) == 1
    if len(rows) > CACHED_ROWS and uniform:
        # Many rows (a batch's): a CASE per column would compare every row
        # with every account of the statement.
        if connection.vendor == "postgresql":
            execute(connection, *ledger_unnest(connection, rows))
            return
        if connection.vendor == "mysql" or _update_from(connection):
            execute(connection, *ledger_joined(connection, rows))
            return
    execute(connection, *ledger_statement(connection, rows))


def _update_from(connection: Any) -> bool:
    """SQLite's ``UPDATE ... FROM`` (3.33 and later)."""
    if connection.vendor != "sqlite":
        return False
    version: tuple[int, ...] = connection.Database.sqlite_version_info
    return version >= (3, 33)


def ledger_joined(connection: Any, rows: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
    """MariaDB and SQLite: set the same columns of many accounts, joined to their values.

    One row of placeholders per account: SQLite's ``UPDATE ... FROM (VALUES
    ...)``, MariaDB's multi-table ``UPDATE`` joined to a ``UNION ALL`` of
    them (whose column types cover every row's value).
    """
    ids = sorted(rows)
    names = sorted(next(iter(rows.values())))
    fields = [field(Account, name) for name in names]
    qn = connection.ops.quote_name
    table, pk = qn(Account._meta.db_table), qn(Account._meta.pk.column)
    columns = [qn(f.column) for f in fields]
    row = "(%s)" % ", ".join(["%s"] * (len(fields) + 1))
    if connection.vendor == "sqlite":
        sql = "UPDATE %s SET %s FROM (VALUES %s) AS v WHERE %s.%s = v.column1" % (
            table,
            ", ".join("%s = v.column%d" % (c, n) for n, c in enumerate(columns, 2)),
            ", ".join([row] * len(ids)),
            table,
            pk,
        )
    else:
        first = "SELECT %s" % ", ".join(
            "%%s AS %s" % c for c in [qn("id_"), *(qn("v_%d" % n) for n in range(len(fields)))]
        )
        rest = " UNION ALL SELECT %s" % ", ".join(["%s"] * (len(fields) + 1))
        sql = "UPDATE %s AS a JOIN (%s%s) AS v ON a.%s = v.%s SET %s" % (
            table,
            first,
            rest * (len(ids) - 1),
            pk,
            qn("id_"),
            ", ".join("a.%s = v.%s" % (c, qn("v_%d" % n)) for n, c in enumerate(columns)),
        )
    values = [db_values(connection, f, [rows[pk][f.name] for pk in ids]) for f in fields]
    return sql, [value for line in zip(ids, *values, strict=True) for value in line]


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
    insert_sql, insert_params = insert_statement(connection, transfer)
    ledger_sql, ledger_params = ledger_statement(connection, rows)

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
            legs_columns(connection),
            qn(transfer._meta.pk.column),
            ", ".join([typed] * len(legs)),
            ledger_sql,
            qn(transfer._meta.pk.column),
        )

    sql = cached((using, "transfer", len(legs), ledger_sql), build)
    params = insert_params + legs_params(connection, legs) + ledger_params
    saved(transfer, execute(connection, sql, params, result="row")[0], using)
