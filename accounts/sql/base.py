"""
What every statement of the write path shares: the cache of built statements,
the fields they write, running one, and marking a new row saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from django.db import models
from django.db.models.base import ModelState

from ..models import Transaction

_cache: dict[tuple[Any, ...], Any] = {}


#: Statements for at most this many rows are kept; larger ones (batches) are
#: built each time, so that the cache stays small whatever the batch sizes.
CACHED_ROWS = 16


T = TypeVar("T")


def cached(key: tuple[Any, ...], build: Callable[[], T], *, rows: int = 0) -> T:
    """What ``build()`` returns, built once per ``key`` (statements for few rows only)."""
    if rows > CACHED_ROWS:
        return build()
    found: T | None = _cache.get(key)
    if found is None:
        found = _cache[key] = build()
    return found


def field(model: type[models.Model], name: str) -> Any:
    return model._meta.get_field(name)


def read_converters(connection: Any, column_field: Any) -> tuple[Any, list[Any]]:
    """The column a field reads, and the converters the ORM runs on its values."""
    column = column_field.get_col(column_field.model._meta.db_table)
    converters: list[Any] = connection.ops.get_db_converters(column)
    return column, converters + column_field.get_db_converters(connection)


def insertable(model: type[models.Model]) -> list[Any]:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def insert_statement(connection: Any, obj: models.Model) -> tuple[str, list[Any]]:
    """``INSERT INTO <table> (...) VALUES (...)`` for one new row, no RETURNING."""
    model = type(obj)
    fields = insertable(model)

    def build() -> str:
        qn = connection.ops.quote_name
        return "INSERT INTO %s (%s) VALUES (%s)" % (
            qn(model._meta.db_table),
            ", ".join(qn(f.column) for f in fields),
            ", ".join(["%s"] * len(fields)),
        )

    sql = cached((connection.alias, "insert", model), build)
    # The instance's own values, not its descriptors: a money field would
    # build a Money only for get_db_prep_save to take its amount again.
    values = obj.__dict__
    return sql, [f.get_db_prep_save(values[f.attname], connection) for f in fields]


#: The columns of a leg, in the order the functions below take their values
#: (the transfer's id comes separately).
LEG_FIELDS = ("account", "currency", "amount", "balance_after", "created")


def legs_params(connection: Any, legs: list[tuple[Any, ...]]) -> list[Any]:
    if not legs:
        return []
    fields = [field(Transaction, name) for name in LEG_FIELDS]
    by_column = zip(*legs, strict=True)
    columns = [db_values(connection, f, v) for f, v in zip(fields, by_column, strict=True)]
    return [value for row in zip(*columns, strict=True) for value in row]


_UNSET = object()


def db_values(connection: Any, column_field: Any, values: Iterable[Any]) -> list[Any]:
    """Each value of one column as ``get_db_prep_save`` would write it.

    For the many rows of a batch: worked out once for a run of the same
    object (a batch's time, currency, empty texts), and for a plain Decimal
    in a decimal column, straight to the backend's adaptation, where the
    field's chain of conversions ends (each of them returns a Decimal as it
    is).
    """
    prep = column_field.get_db_prep_save
    places = None
    if isinstance(column_field, models.DecimalField):
        places = (column_field.max_digits, column_field.decimal_places)
    adapt = connection.ops.adapt_decimalfield_value
    found: list[Any] = []
    last: Any = _UNSET
    done: Any = None
    for value in values:
        if value is not last:
            last = value
            if places is not None and type(value) is Decimal:
                done = adapt(value, *places)
            else:
                done = prep(value, connection)
        found.append(done)
    return found


def legs_columns(connection: Any) -> str:
    qn = connection.ops.quote_name
    names = ("transfer", *LEG_FIELDS)
    return ", ".join(qn(field(Transaction, name).column) for name in names)


def execute(connection: Any, sql: str, params: list[Any], *, result: str = "") -> Any:
    """Run one statement; return its first row (``result="row"``), the new row's id
    (``result="lastrowid"``), or nothing."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if result == "row":
            return cursor.fetchone()
        if result == "lastrowid":
            return cursor.lastrowid
        return None


M = TypeVar("M", bound=models.Model)


def built(model: type[M], values: Mapping[str, Any], using: str | None = None) -> M:
    """An instance with these attribute values, without ``Model.__init__``.

    For the rows the write path builds itself, by the hundred in a batch:
    the values it read under the lock, or decided. Django's constructor
    would run each through its field's descriptor and send ``pre_init`` and
    ``post_init``, several times the cost of everything else done with the
    instance. ``values``: by attribute name; a column left out is deferred
    (loaded on first access). ``using``: loaded from that database;
    ``None``: not saved yet.
    """
    obj = model.__new__(model)
    obj.__dict__.update(values)
    state = obj._state = ModelState()
    if using is not None:
        state.adding = False
        state.db = using
    return obj


def saved(obj: models.Model, pk: Any, using: str) -> None:
    meta = obj._meta
    if meta.parents:
        obj.pk = pk  # the parent links too
    else:
        # A plain model (a batch writes hundreds): its key straight into its attributes.
        obj.__dict__[meta.pk.attname] = pk
    obj._state.adding = False
    obj._state.db = using
