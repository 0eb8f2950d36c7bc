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

from ..models import Account, Transaction, Transfer
from .base import LEG_FIELDS, cached, field, insertable, legs_columns, saved


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
    if all(value is first for value in values):
        # One value throughout (a batch's time, currency, description, a NULL
        # column): its text once.
        one = "NULL" if first is None else (_ELEMENT_TEXT.get(type(first)) or _element)(first)
        return "{%s}" % ",".join([one] * len(values))
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


def insert_transfers_unnest(
    connection: Any, using: str, transfers: Sequence[Transfer], legs: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL: the transfers and their legs in one statement, one array per column.

    A statement with one placeholder per value costs the driver and the
    server more to parse than to run once a batch has hundreds of rows; one
    array parameter per column keeps it the same few parameters. Each leg
    finds its transfer by the transfer's reference.
    """
    qn = connection.ops.quote_name
    fields = insertable(Transfer)
    leg_fields = [field(Transaction, name) for name in LEG_FIELDS]
    reference = qn(field(Transfer, "reference").column)

    def build() -> str:
        arrays = ", ".join("%%s::%s" % kind for kind in array_types(connection, fields))
        leg_arrays = ", ".join(
            "%%s::%s" % kind
            for kind in array_types(connection, [field(Transfer, "reference"), *leg_fields])
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
            legs_columns(connection),
            qn(Transfer._meta.pk.column),
            ", ".join("leg.%s" % qn(f.column) for f in leg_fields),
            leg_arrays,
            reference,
            leg_names,
            reference,
            qn(Transfer._meta.pk.column),
            reference,
        )

    statement = cached((using, "insert transfers"), build)
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
            saved(by_reference[new_reference], new_pk, using)


def ledger_unnest(connection: Any, rows: dict[int, dict[str, Any]]) -> tuple[str, list[Any]]:
    """PostgreSQL: set the same columns of many accounts from arrays, in one ``UPDATE``."""
    ids = sorted(rows)
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
