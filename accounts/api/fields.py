"""
Serializer fields that take JSON as it is sent, without guessing.

DRF's own fields coerce: ``CharField`` turns ``12`` into ``"12"``,
``BooleanField`` takes ``"yes"`` and ``1``, ``DecimalField`` takes a JSON
number, which the JSON parser has already made a ``float``. Money must not
pass through a float, and a wrong type is a client bug worth reporting, so
the fields here accept exactly one JSON type each and refuse the rest with a
message naming what was expected.

Amounts go in as decimal strings (``"10.00"``) and come out as
``{"amount": "10.00", "currency": "GBP"}``.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import amounts, arguments
from ..arguments import JSON
from ..conf import conf
from ..exceptions import InvalidAmount, InvalidArgument

#: A positive decimal written out: digits, optionally a point and more digits.
AMOUNT_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,4})?$"
#: A signed decimal as the API writes amounts out.
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


class MoneySerializer(serializers.Serializer[Money]):
    """An amount of money: a decimal string and its ISO 4217 currency code."""

    amount = serializers.CharField(
        help_text=_("A decimal string, never a JSON number; negative for debits in statements."),
    )
    currency = serializers.CharField(help_text=_("ISO 4217 currency code."))

    class Meta:
        ref_name = "Money"


@extend_schema_field(MoneySerializer)
class MoneyField(serializers.Field[Money, dict[str, str], dict[str, str], Any]):
    """A read-only ``Money`` written as ``{"amount": "10.00", "currency": "GBP"}``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Money) -> dict[str, str]:
        return {"amount": str(value.amount), "currency": value.currency.code}


class StrictSerializer(serializers.Serializer[dict[str, Any]]):
    """A serializer that refuses fields it does not know, naming each of them."""

    default_error_messages = {"unknown": _("This field is not known.")}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [self.error_messages["unknown"]] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, and nothing else (a number is refused, not converted)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false``, and nothing else."""

    default_error_messages = {"invalid": _("Must be true or false.")}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field({"type": "integer", "minimum": 1, "example": 7})
class AccountIdField(serializers.Field[int, object, int, Any]):
    """An account's id as a JSON integer."""

    default_error_messages = {"invalid": _("Must be an account id (a JSON integer).")}

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int) or data < 1:
            self.fail("invalid")
        return data

    def to_representation(self, value: int) -> int:
        return int(value)


@extend_schema_field({"type": "string", "pattern": AMOUNT_PATTERN, "example": "10.00"})
class AmountField(serializers.Field[Decimal, object, str, Any]):
    """A positive amount as a decimal string: ``"10.00"``; never a JSON number.

    The number of decimal places is checked against the currency by the
    serializer that knows it; nothing is ever rounded.
    """

    default_error_messages = {
        "type": _('Amounts are decimal strings such as "10.00", never JSON numbers (got {type}).'),
        "format": _('Write the amount as digits with an optional decimal point, like "10.00".'),
    }

    def to_internal_value(self, data: object) -> Decimal:
        if not isinstance(data, str):
            self.fail("type", type=type(data).__name__)
        if not re.match(AMOUNT_PATTERN, data):
            self.fail("format")
        try:
            value = Decimal(data)
            amounts.parse_amount(value)
        except (InvalidOperation, InvalidAmount) as exc:
            raise serializers.ValidationError(str(exc), code="invalid_amount") from exc
        return value


@extend_schema_field({"type": "string", "pattern": "^[A-Z]{3}$", "example": "GBP"})
class CurrencyField(serializers.Field[str, object, str, Any]):
    """One of ``ACCOUNTS_CURRENCIES``, as an ISO 4217 code string."""

    default_error_messages = {
        "invalid": _("{value} is not one of the currencies in use ({currencies}).")
    }

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str) or data not in conf.CURRENCIES:
            self.fail("invalid", value=repr(data), currencies=", ".join(conf.CURRENCIES))
        return data

    def to_representation(self, value: str) -> str:
        return str(value)


#: The schema of a date and time with its offset, with an example.
DATETIME_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "example": "2026-03-01T12:00:00+00:00",
}


@extend_schema_field(DATETIME_SCHEMA)
class MomentField(serializers.DateTimeField):
    """A date and time the API answers with (ISO 8601, with its offset), with an example."""


@extend_schema_field(DATETIME_SCHEMA)
class AwareDateTimeField(serializers.Field[datetime.datetime, object, str, Any]):
    """An ISO 8601 date and time with its UTC offset (``2026-03-01T12:00:00+00:00``)."""

    default_error_messages = {
        "invalid": _(
            "Give an ISO 8601 date and time with its UTC offset, like 2026-03-01T12:00:00+00:00."
        )
    }

    def to_internal_value(self, data: object) -> datetime.datetime:
        try:
            moment = parse_datetime(data) if isinstance(data, str) else None
        except ValueError:  # well formed, but no such moment (2026-02-30T12:00)
            moment = None
        if moment is None or moment.tzinfo is None:
            self.fail("invalid")
        return moment

    def to_representation(self, value: datetime.datetime) -> str:
        return value.isoformat()


#: The schema of a metadata object, with an example.
METADATA_SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "description": (
        "A JSON object of your own (strings, numbers, true/false, null, lists and objects), "
        "at most ACCOUNTS_METADATA_MAX_BYTES as compact UTF-8 JSON; stored as given and "
        "never changed."
    ),
    "example": {"order": "3001", "channel": "web"},
}


@extend_schema_field(METADATA_SCHEMA)
class MetadataField(serializers.Field[dict[str, JSON], object, dict[str, JSON], Any]):
    """A JSON object of the caller's, checked as the ledger checks metadata.

    ``accounts.arguments.metadata`` decides (an object, JSON values, storable
    text, at most ``ACCOUNTS_METADATA_MAX_BYTES``), here, so that a refusal
    is a 400 naming the field (``transfers.1.metadata`` in a batch) before
    anything is locked; the facade checks it again, the same way.
    """

    def to_internal_value(self, data: object) -> dict[str, JSON]:
        try:
            return arguments.metadata(data)
        except InvalidArgument as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from exc

    def to_representation(self, value: dict[str, JSON]) -> dict[str, JSON]:
        return value


def check_places(amount: Decimal, currency: str, field: str = "amount") -> None:
    """Refuse an amount with more decimal places than ``currency`` has, on ``field``."""
    try:
        amounts.check_places(amount, currency)
    except InvalidAmount as exc:
        raise serializers.ValidationError({field: [str(exc)]}, code="invalid_amount") from exc


def parse_day_or_moment(text: str) -> datetime.date | None:
    """A query parameter: a date (a whole day) or an aware date and time; None if neither."""
    try:
        day = parse_date(text)
        if day is not None:
            return day
        moment = parse_datetime(text)
    except ValueError:  # well formed, but no such day (2026-02-30)
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment
