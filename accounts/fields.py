"""
Model fields for the ledger.

``LedgerMoneyField`` is django-money's ``MoneyField`` pinned to one currency
column shared by every money field of the row (an account has exactly one
currency). Assigning a ``Money`` in another currency raises
``CurrencyMismatch`` instead of silently switching the row's currency, which
is what django-money does for a field with its own currency column.

``WindowDateTimeField`` stores an account's start or end moment and accepts a
plain ``date``, meaning the start (or the end, inclusive) of that day in the
current time zone.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.conf import settings
from django.db import models
from django.db.models import lookups
from django.db.models.query_utils import DeferredAttribute
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField, MoneyFieldProxy

from .amounts import DECIMAL_PLACES, MAX_DIGITS, money
from .exceptions import CurrencyMismatch

CURRENCY_FIELD = "currency"

# A field's set and get types, as django-stubs declares them, so that the
# subclasses below stay generic and the plugin types their columns (null or
# not). Django's field classes cannot be subscripted at run time.
_ST = TypeVar("_ST", contravariant=True)
_GT = TypeVar("_GT", covariant=True)
if TYPE_CHECKING:
    _CharField = models.CharField
    _DateTimeField = models.DateTimeField
else:

    class _Untyped:
        """A field class in a class's bases; its type arguments are for mypy only."""

        def __init__(self, field_class):
            self.field_class = field_class

        def __getitem__(self, type_arguments):
            return self.field_class

    _CharField = _Untyped(models.CharField)
    _DateTimeField = _Untyped(models.DateTimeField)


class LedgerMoneyProxy(MoneyFieldProxy):
    """Descriptor that reads the row's currency and refuses to change it."""

    def __set__(self, obj: Any, value: Any) -> None:
        # Rows loaded from the database (and the facade) set plain Decimals:
        # store them as they are; the Money is built on first read.
        if value is None or type(value) is Decimal:
            obj.__dict__[self.field.name] = value
        else:
            # djmoney ships py.typed but leaves its methods unannotated.
            super().__set__(obj, value)  # type: ignore[no-untyped-call]

    def _money_from_obj(self, obj: Any) -> Any:
        amount = obj.__dict__[self.field.name]
        if amount is None:
            return None
        return money(amount, obj.__dict__[self.currency_field_name])

    def set_currency(self, obj: Any, value: Any) -> None:
        current = obj.__dict__.get(self.currency_field_name)
        if current and str(value) != current:
            raise CurrencyMismatch(
                _("%(field)s is in %(currency)s but the row's currency is %(expected)s."),
                field=self.field.verbose_name,
                currency=value,
                expected=current,
            )
        if not current:
            setattr(obj, self.currency_field_name, str(value))


class AmountFormField(forms.DecimalField):
    """Form field of a ledger money column: the amount only, in the row's currency.

    The model hands forms a ``Money``; a number input shows, and compares,
    only its amount (it cannot show "£10.00").
    """

    def prepare_value(self, value: Any) -> Any:
        return getattr(value, "amount", value)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return super().has_changed(getattr(initial, "amount", initial), data)


class LedgerMoneyField(MoneyField):
    """A money column sharing the row's ``currency`` column."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        kwargs.setdefault("currency_field_name", CURRENCY_FIELD)
        kwargs.setdefault("default_currency", None)
        kwargs["money_descriptor_class"] = LedgerMoneyProxy
        # djmoney ships py.typed but leaves its methods unannotated.
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        # djmoney ships py.typed but leaves its methods unannotated.
        name, path, args, kwargs = super().deconstruct()  # type: ignore[no-untyped-call]
        # The shared currency column and the descriptor are fixed by this
        # class, so migrations need not (and should not) repeat them.
        for key in ("currency_field_name", "default_currency", "money_descriptor_class"):
            kwargs.pop(key, None)
        return name, path, args, kwargs

    def formfield(self, **kwargs: Any) -> Any:  # type: ignore[override]
        # The currency is the row's, so forms ask for the amount only.
        defaults: dict[str, Any] = {
            "form_class": AmountFormField,
            "max_digits": self.max_digits,
            "decimal_places": self.decimal_places,
            **kwargs,
        }
        return models.DecimalField.formfield(self, **defaults)


def zero() -> Decimal:
    """Default amount of a money column.

    A callable rather than ``Decimal(0)``: django-money turns a plain default
    into a ``Money`` in a fixed currency, which would overwrite the row's.
    """
    return Decimal("0")


def window_bound(value: Any, *, end: bool) -> Any:
    """Turn a plain ``date`` into the first (or last) moment of that day.

    The day is taken in the current time zone. Datetimes and ``None`` pass
    through unchanged; anything else is left to ``DateTimeField.to_python``.
    """
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        return value
    moment = datetime.datetime.combine(value, datetime.time.max if end else datetime.time.min)
    if settings.USE_TZ:
        moment = timezone.make_aware(moment)
    return moment


class WindowAttribute(DeferredAttribute):
    def __set__(self, instance: Any, value: Any) -> None:
        end = self.field.end  # type: ignore[attr-defined]
        instance.__dict__[self.field.attname] = window_bound(value, end=end)


# Any, not the generic types: typed precisely (datetime | None), the start and
# end dates need narrowing where expiry.py and the API read them.
class WindowDateTimeField(_DateTimeField[Any, Any]):
    """Start or end of an account's active window; accepts dates as whole days."""

    descriptor_class = WindowAttribute

    def __init__(self, *args: Any, end: bool = False, **kwargs: Any) -> None:
        self.end = end
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        if self.end:
            kwargs["end"] = True
        return name, path, args, kwargs

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(window_bound(value, end=self.end))


def exact_collation(connection: Any) -> str | None:
    """The collation that compares text byte for byte, trailing spaces included.

    ``None`` where the database's default already does (PostgreSQL's
    deterministic collations, SQLite's ``BINARY``). MariaDB's and MySQL's
    defaults fold case and accents (``"Xk9aQ" = "xK9Aq"``, ``"café" =
    "cafe"``), and their ``_bin`` collations still ignore trailing spaces
    (``"pay-7" = "pay-7 "``): the ``NO PAD`` binary collations do neither.
    """
    if connection.vendor != "mysql":
        return None
    return "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"


class ExactCharField(_CharField[_ST, _GT]):
    """A ``CharField`` that every backend compares exactly, byte for byte.

    For columns that identify something (idempotency keys, references,
    codes): two values are the same only if they are the same string. On
    MariaDB/MySQL the column gets the collation of :func:`exact_collation`
    (by migration, and in any later migration that alters it); the system
    check ``accounts.W003`` reports a live column that lost it. The
    case-insensitive lookups (``iexact``, ``icontains``, ``istartswith``,
    ``iendswith``) still fold case there, as on the other backends: they
    compare under a case-insensitive collation.
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if not getattr(self, "db_collation", None):
            collation = exact_collation(connection)
            if collation:
                params["collation"] = collation
        return params


class _FoldCaseOnMySQL:
    """A case-insensitive lookup that stays so on a column with an exact collation."""

    def process_lhs(self, compiler: Any, connection: Any, lhs: Any = None) -> Any:
        sql, params = super().process_lhs(compiler, connection, lhs)  # type: ignore[misc]
        if connection.vendor == "mysql":
            sql = "%s COLLATE utf8mb4_unicode_ci" % sql
        return sql, params


for _lookup in (lookups.IExact, lookups.IContains, lookups.IStartsWith, lookups.IEndsWith):
    ExactCharField.register_lookup(
        type(_lookup.__name__, (_FoldCaseOnMySQL, _lookup), {"__module__": __name__})
    )
