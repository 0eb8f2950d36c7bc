"""
PostgreSQL statements for many rows: one array parameter per column
(``INSERT ... SELECT * FROM unnest(...)``, ``UPDATE ... FROM unnest(...)``),
however many rows, and the arrays' text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..models import Account, Batch, Transaction, Transfer
from .base import LEG_FIELDS, cached, field, insert_statement, insertable, legs_columns, saved
from .prepared import run as run_prepared
from .prepared import usable as may_prepare


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array in its text form (``{1.00,NULL,"a \\"b\\""}``), cast by the statement.

    Faster than the driver's own array adaptation by an order of magnitude:
    the values are Decimals, integers, aware datetimes, strings (already
    checked to hold no NUL), JSON objects and ``None``. A column's values
    are of one type (or ``None``): its text form is chosen once.
    """
    if not values:
        return "{}"
    first = values[0]
    kind = type(first)
    if (
        all(value is first for value in values)
        or (kind in _SAME_WHEN_EQUAL and all(value == first for value in values))
        # Empty metadata, each request's own {}.
        or (kind is dict and not first and all(type(v) is dict and not v for v in values))
    ):
        # One value throughout (a batch's time, currency, description, a NULL
        # column): its text once. Equal values of these types have the same
        # text, or (a Decimal's trailing zeros) store the same; not JSON,
        # where 1 == 1.0 but the texts differ.
        one = "NULL" if first is None else (_ELEMENT_TEXT.get(type(first)) or _element)(first)
        return "{%s}" % ",".join([one] * len(values))
    kinds = set(map(type, values))
    kinds.discard(type(None))
    text = _ELEMENT_TEXT.get(kinds.pop()) if len(kinds) == 1 else _element
    if text is None:
        text = _element
    return "{%s}" % ",".join(["NULL" if value is None else text(value) for value in values])


#: The types whose equal values :func:`array_literal` may write as the first one's text.
_SAME_WHEN_EQUAL = frozenset({str, int, Decimal, date, datetime})


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
        return _json(value)
    return _quoted(str(value))


def _json(value: Any) -> str:
    """JSON (metadata), for a jsonb[] array."""
    if not value:
        return '"{}"' if isinstance(value, dict) else '"[]"'
    return _quoted(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


#: The text of an element by its exact type, for the common columns.
_ELEMENT_TEXT: dict[type, Any] = {
    int: str,
    Decimal: str,
    str: _quoted,
    datetime: lambda value: '"%s"' % value.isoformat(),
    date: date.isoformat,
    dict: _json,
}


def array_types(connection: Any, fields: list[Any]) -> list[str]:
    """The PostgreSQL array type of each field's column (``numeric(19, 4)[]``, ...)."""
    return ["%s[]" % f.db_type(connection) for f in fields]


def write_batch_unnest(
    connection: Any,
    using: str,
    batch: Batch,
    transfers: Sequence[Transfer],
    legs: list[tuple[Any, ...]],
    rows: dict[int, dict[str, Any]],
    names: Sequence[str],
    *,
    prepare: bool = False,
) -> None:
    """PostgreSQL: a batch, its transfers, their legs and the balances in one statement.

    One array per column, however many rows: a statement with one
    placeholder per value would cost the driver and the server more to
    parse than to run once a batch has hundreds of rows. Each transfer takes
    the new batch's key, each leg finds its transfer by the transfer's
    reference, and the accounts' ``names`` columns are set from ``rows``
    (:func:`ledger_unnest`). One statement is one round trip, and the
    two-legs guard checks each statement (migration 0015). The same few
    parameters whatever the size: with ``prepare``, planned once per server
    session (``accounts.sql.prepared``). Each leg finds its transfer by the
    transfer's ``batch_position`` (unique in its batch): an integer array,
    cheaper to send, parse and join on than the references.
    """
    qn = connection.ops.quote_name
    batch_sql, batch_params = insert_statement(connection, batch)
    fields = [f for f in insertable(Transfer) if f.name != "batch"]
    # The batch's transfers and their legs are created when the batch is:
    # its creation time, once, instead of an array of hundreds of copies.
    # (What its rows were built with: checked below, before anything is sent.)
    created = field(Transfer, "created")
    arrayed = [f for f in fields if f is not created]
    leg_fields = [field(Transaction, name) for name in LEG_FIELDS]
    leg_arrayed = [f for f in leg_fields if f.name != "created"]
    position = qn(field(Transfer, "batch_position").column)
    balances_sql, balances = ledger_unnest(connection, rows, names)

    def build() -> str:
        pk = qn(Transfer._meta.pk.column)
        arrays = ", ".join("%%s::%s" % kind for kind in array_types(connection, arrayed))
        leg_arrays = ", ".join(
            "%%s::%s" % kind
            for kind in array_types(connection, [field(Transfer, "batch_position"), *leg_arrayed])
        )
        leg_names = ", ".join(qn(f.column) for f in leg_arrayed)
        aliases = {f: "x.c%d" % n for n, f in enumerate(arrayed)}
        aliases[created] = "new_batch.%s" % qn(field(Batch, "created").column)
        when = qn(created.column)
        return (
            "WITH new_batch AS (%s RETURNING %s, %s), "
            "new_transfers AS (INSERT INTO %s (%s, %s) SELECT %s, new_batch.%s "
            "FROM unnest(%s) AS x(%s), new_batch RETURNING %s, %s, %s), "
            "new_legs AS (INSERT INTO %s (%s) SELECT t.%s, %s "
            "FROM unnest(%s) AS leg(%s, %s) JOIN new_transfers t USING (%s)), "
            "new_balances AS (%s) "
            "SELECT new_batch.%s, t.%s, t.%s FROM new_batch LEFT JOIN new_transfers t ON true"
        ) % (
            batch_sql,
            qn(Batch._meta.pk.column),
            qn(field(Batch, "created").column),
            qn(Transfer._meta.db_table),
            ", ".join(qn(f.column) for f in fields),
            qn(field(Transfer, "batch").column),
            ", ".join(aliases[f] for f in fields),
            qn(Batch._meta.pk.column),
            arrays,
            ", ".join("c%d" % n for n in range(len(arrayed))),
            pk,
            position,
            when,
            qn(Transaction._meta.db_table),
            legs_columns(connection),
            pk,
            ", ".join(
                "t.%s" % when if f.name == "created" else "leg.%s" % qn(f.column)
                for f in leg_fields
            ),
            leg_arrays,
            position,
            leg_names,
            position,
            balances_sql,
            qn(Batch._meta.pk.column),
            pk,
            position,
        )

    statement = cached((using, "write batch", tuple(names)), build)
    moment = batch.created
    if any(obj.created != moment for obj in transfers) or any(leg[-1] != moment for leg in legs):
        raise RuntimeError("A batch's transfers and legs are created when the batch is.")
    # The instances' own values: plain Decimals, aware datetimes, strings,
    # integers (get_db_prep_save would only return them).
    columns = [array_literal([obj.__dict__[f.attname] for obj in transfers]) for f in arrayed]
    positions = [obj.batch_position for obj in transfers]
    by_position = dict(zip(positions, transfers, strict=True))
    if None in by_position or len(by_position) != len(transfers):
        raise RuntimeError("A batch's transfers each have a position of their own.")
    leg_rows = [(positions[leg[0]], *leg[1:-1]) for leg in legs]
    columns += [array_literal(list(column)) for column in zip(*leg_rows, strict=True)]
    if not leg_rows:
        columns += [array_literal([])] * len(LEG_FIELDS)
    params = [*batch_params, *columns, *balances]
    if prepare and may_prepare(connection):
        found = run_prepared(connection, statement, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            found = cursor.fetchall()
    saved(batch, found[0][0], using)
    # What saved() and the batch's descriptor would set, straight into each
    # transfer's attributes (a plain model: no parent links).
    batch_pk, pk_name, batch_name = batch.pk, Transfer._meta.pk.attname, BATCH_ATTNAME
    for _batch_pk, new_pk, new_position in found:
        if new_pk is not None:
            transfer = by_position[new_position]
            transfer.__dict__[batch_name] = batch_pk
            transfer.__dict__[pk_name] = new_pk
            state = transfer._state
            state.adding = False
            state.db = using


#: The transfers' column naming their batch, by attribute name.
BATCH_ATTNAME = Transfer._meta.get_field("batch").attname


def ledger_unnest(
    connection: Any, rows: dict[int, dict[str, Any]], names: Sequence[str] | None = None
) -> tuple[str, list[Any]]:
    """PostgreSQL: set the same columns of many accounts from arrays, in one ``UPDATE``.

    ``names``: the columns every row sets (default: those of the rows).
    """
    ids = sorted(rows)
    if names is None:
        names = sorted({name for row in rows.values() for name in row})
    fields = [field(Account, name) for name in names]
    qn = connection.ops.quote_name

    def build() -> str:
        pk = qn(Account._meta.pk.column)
        kinds = array_types(connection, [Account._meta.pk, *fields])
        return "UPDATE %s AS a SET %s FROM unnest(%s) AS v(%s) WHERE a.%s = v.%s" % (
            qn(Account._meta.db_table),
            ", ".join("%s = v.%s" % (qn(f.column), qn(f.column)) for f in fields),
            ", ".join("%%s::%s" % kind for kind in kinds),
            ", ".join([pk, *(qn(f.column) for f in fields)]),
            pk,
            pk,
        )

    statement = cached((connection.alias, "ledger unnest", tuple(names)), build)
    columns = [array_literal(ids)] + [
        array_literal([rows[pk][f.name] for pk in ids]) for f in fields
    ]
    return statement, columns
