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
from operator import itemgetter
from typing import Any

from ..models import Account, Batch, Transaction, Transfer
from .base import cached, field, insert_statement, insertable, legs_columns, saved
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
        # Counted in C: equal to the first (or the first itself, for None).
        (kind in _SAME_WHEN_EQUAL and values.count(first) == len(values))
        or all(value is first for value in values)
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
_SAME_WHEN_EQUAL = frozenset({str, int, Decimal, date, datetime, type(None)})


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
    the new batch's key, and the accounts' ``names`` columns are set from
    ``rows`` (:func:`ledger_unnest`). A transfer's two legs are made in the
    statement from the transfer itself (its source and destination, its
    amount out of one and into the other, its currency and time); only each
    leg's ``balance_after`` is sent, two arrays beside the transfers'
    columns. The legs are inserted in the transfers' order, source leg
    first: on each account, a later leg of the batch has a greater key.
    One statement is one round trip, and the statement guards check it
    (migrations 0015 to 0019). The same few parameters whatever the size:
    with ``prepare``, planned once per server session
    (``accounts.sql.prepared``).

    ``legs`` are the transfers' legs as :func:`write_batch` takes them, in
    pairs (the source's, then the destination's) in the transfers' order;
    checked against the transfers before anything is sent.
    """
    qn = connection.ops.quote_name
    batch_sql, batch_params = insert_statement(connection, batch)
    fields = [f for f in insertable(Transfer) if f.name != "batch"]
    # The batch's transfers and their legs are created when the batch is:
    # its creation time, once, instead of an array of hundreds of copies.
    # (What its rows were built with: checked below, before anything is sent.)
    created = field(Transfer, "created")
    arrayed = [f for f in fields if f is not created]
    balances_sql, balances = ledger_unnest(connection, rows, names)

    def build() -> str:
        pk = qn(Transfer._meta.pk.column)
        after = field(Transaction, "balance_after")
        kinds = array_types(connection, [*arrayed, after, after])
        aliases = {f: "x.c%d" % n for n, f in enumerate(arrayed)}
        aliases[created] = "new_batch.%s" % qn(field(Batch, "created").column)
        column = {name: qn(field(Transfer, name).column) for name in _LEG_SOURCES}
        return (
            "WITH new_batch AS (%s RETURNING %s, %s), "
            "src AS MATERIALIZED (SELECT * FROM unnest(%s) AS x(%s, source_after, "
            "destination_after)), "
            "new_transfers AS (INSERT INTO %s (%s, %s) SELECT %s, new_batch.%s "
            "FROM src x, new_batch RETURNING %s, %s), "
            "new_legs AS (INSERT INTO %s (%s) "
            "SELECT t.%s, leg.account, t.%s, leg.amount, leg.after, t.%s "
            "FROM new_transfers t JOIN src x ON x.%s = t.%s "
            "CROSS JOIN LATERAL (VALUES (0, t.%s, -t.%s, x.source_after), "
            "(1, t.%s, t.%s, x.destination_after)) AS leg(side, account, amount, after) "
            "ORDER BY t.%s, leg.side), "
            "new_balances AS (%s) "
            "SELECT new_batch.%s, t.%s, t.%s FROM new_batch LEFT JOIN new_transfers t ON true"
        ) % (
            batch_sql,
            qn(Batch._meta.pk.column),
            qn(field(Batch, "created").column),
            ", ".join("%%s::%s" % kind for kind in kinds),
            ", ".join("c%d" % n for n in range(len(arrayed))),
            qn(Transfer._meta.db_table),
            ", ".join(qn(f.column) for f in fields),
            qn(field(Transfer, "batch").column),
            ", ".join(aliases[f] for f in fields),
            qn(Batch._meta.pk.column),
            pk,
            ", ".join(column[name] for name in _LEG_SOURCES),
            qn(Transaction._meta.db_table),
            legs_columns(connection),
            pk,
            column["currency"],
            column["created"],
            aliases[field(Transfer, "batch_position")].split(".")[1],
            column["batch_position"],
            column["source"],
            column["amount"],
            column["destination"],
            column["amount"],
            column["batch_position"],
            balances_sql,
            qn(Batch._meta.pk.column),
            pk,
            column["batch_position"],
        )

    statement = cached((using, "write batch", tuple(names)), build)
    moment = batch.created
    if any(obj.created != moment for obj in transfers):
        raise RuntimeError("A batch's transfers and legs are created when the batch is.")
    positions = [obj.batch_position for obj in transfers]
    by_position = dict(zip(positions, transfers, strict=True))
    if None in by_position or len(by_position) != len(transfers):
        raise RuntimeError("A batch's transfers each have a position of their own.")
    source_after, destination_after = _afters(transfers, legs, moment)
    # The instances' own values: plain Decimals, aware datetimes, strings,
    # integers (get_db_prep_save would only return them).
    values = [obj.__dict__ for obj in transfers]
    columns = [array_literal(list(map(itemgetter(f.attname), values))) for f in arrayed]
    columns += [array_literal(source_after), array_literal(destination_after)]
    params = [*batch_params, *columns, *balances]
    if prepare and may_prepare(connection):
        found = run_prepared(connection, statement, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            found = cursor.fetchall()
    saved(batch, found[0][0], using)
    for _batch_pk, new_pk, new_position in found:
        if new_pk is not None:
            transfer = by_position[new_position]
            # What the batch's descriptor would set, without it.
            transfer.__dict__[BATCH_ATTNAME] = batch.pk
            saved(transfer, new_pk, using)


#: The transfer's columns its legs are made from, in the order RETURNING gives them.
_LEG_SOURCES = ("source", "destination", "currency", "amount", "batch_position", "created")


def _afters(
    transfers: Sequence[Transfer], legs: list[tuple[Any, ...]], moment: Any
) -> tuple[list[Any], list[Any]]:
    """Each transfer's two balances after it, from its legs, checked to be its legs."""
    if len(legs) != 2 * len(transfers):
        raise RuntimeError("A batch's transfers each have two legs.")
    source_after, destination_after = [], []
    for n, transfer in enumerate(transfers):
        values = transfer.__dict__
        out, into = legs[2 * n], legs[2 * n + 1]
        amount, currency = values["amount"], values["currency"]
        if (
            out[:4] != (n, values["source_id"], currency, -amount)
            or into[:4] != (n, values["destination_id"], currency, amount)
            or out[5] != moment
            or into[5] != moment
        ):
            raise RuntimeError("Transfer %d's legs are not its own." % n)
        source_after.append(out[4])
        destination_after.append(into[4])
    return source_after, destination_after


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
    ordered = [rows[pk] for pk in ids]
    columns = [array_literal(ids)] + [
        array_literal(list(map(itemgetter(f.name), ordered))) for f in fields
    ]
    return statement, columns
