"""
Amounts typed by people, read on the server: the form fields for amounts.

Amounts are typed as text and read here (:func:`parse_amount_text`): a
browser's number input silently drops a decimal comma (``1,50`` is sent as
``150``), so none is used. A decimal comma is read as a decimal point, a
thousands separator is accepted only where it cannot be misread, and
anything else is refused with a message saying what to type.

The fields check amounts with ``accounts.amounts``, the same code the facade
uses, so a bad amount is a form error before anything is locked.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import amounts
from .exceptions import InvalidAmount

#: Spaces people and locales put between groups of thousands (never a decimal separator).
_SPACES = " \u00a0\u202f\u2009"
#: Apostrophes (Swiss style, 1'234.50): group separators too.
_APOSTROPHES = "'\u2019"
_SIGNS = {"-": "-", "\u2212": "-", "+": ""}
_ALLOWED = re.compile(r"[0-9.,%s%s]*\Z" % (_SPACES, _APOSTROPHES))


def _grouped(digits: str, separator: str) -> bool:
    """Whether ``digits`` are groups of three after a first group of one to three."""
    groups = digits.split(separator)
    return (
        1 <= len(groups[0]) <= 3
        and groups[0].isdigit()
        and all(len(group) == 3 and group.isdigit() for group in groups[1:])
    )


def _decimal_hint(value: Decimal) -> str:
    """``value`` written so that it cannot be misread: 1.5 as 1.50, 1.001 as 1.0010."""
    places = max(2, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
    if places == 3:
        places = 4
    return str(value.quantize(Decimal(1).scaleb(-places)))


def parse_amount_text(text: str) -> Decimal:
    """Read an amount a person typed; raise ``ValidationError`` rather than guess.

    * ``12.50`` and ``12,50`` are both twelve and a half: a decimal comma is
      read as a decimal point, never dropped.
    * Thousands separators are accepted where they cannot be a decimal
      separator: ``1,234.50``, ``1.234,50``, ``1 234,50``, ``1'234.50``,
      ``1,234,567``, each with groups of three.
    * A lone comma followed by exactly three digits (``1,500``) could be
      either, and is refused with a message saying what to type. A lone
      point is the decimal point (``1.500`` is one and a half).
    * Signs are kept (the caller refuses negative amounts); letters,
      currency symbols and exponents are refused.
    """
    value = text.strip()
    sign = ""
    if value[:1] in _SIGNS:
        sign, value = _SIGNS[value[0]], value[1:].strip()
    if not value or not _ALLOWED.match(value):
        if re.search(r"[^\W\d_]|[$£€¥¤]", value):
            raise ValidationError(
                _(
                    "Type the amount in digits only, without a currency symbol or code "
                    "(for example 12.50)."
                ),
                code="invalid",
            )
        raise ValidationError(
            _("Type the amount as a number, for example 12.50 or 12,50."), code="invalid"
        )
    spaced = any(c in value for c in _SPACES + _APOSTROPHES)
    for c in _SPACES + _APOSTROPHES:
        value = value.replace(c, " ")
    dots, commas = value.count("."), value.count(",")
    if dots and commas:
        # The one that comes last separates the decimals; the other one groups.
        point = "." if value.rfind(".") > value.rfind(",") else ","
        group = "," if point == "." else "."
    elif dots + commas > 1:
        point, group = "", "." if dots else ","
    elif dots + commas == 1:
        point, group = ("." if dots else ","), ""
    else:
        point, group = "", ""
    if point and value.count(point) > 1:
        raise ValidationError(
            _("%(value)s has more than one decimal separator."),
            code="invalid",
            params={"value": text.strip()},
        )
    whole, _sep, fraction = value.partition(point) if point else (value, "", "")
    if group and " " in whole:
        raise ValidationError(
            _("%(value)s mixes two kinds of thousands separator."),
            code="invalid",
            params={"value": text.strip()},
        )
    group = group or (" " if spaced else "")
    if group and group in whole and not _grouped(whole, group):
        raise ValidationError(
            _(
                "%(value)s has a thousands separator in the wrong place: groups of "
                "three digits, or type the amount without it."
            ),
            code="invalid",
            params={"value": text.strip()},
        )
    if point and (not fraction.isdigit() or " " in fraction):
        raise ValidationError(
            _("Type the amount as a number, for example 12.50 or 12,50."), code="invalid"
        )
    digits = whole.replace(group, "") if group else whole
    if digits and not digits.isdigit():
        raise ValidationError(
            _("Type the amount as a number, for example 12.50 or 12,50."), code="invalid"
        )
    if point == "," and not group and len(fraction) == 3 and digits.lstrip("0"):
        # 1,500: a thousands separator (as in London), or a decimal comma (as
        # in Paris)? A lone point is always the decimal point.
        as_decimal = Decimal(digits + "." + fraction)
        raise ValidationError(
            _(
                "%(value)s could mean %(thousands)s or %(decimal)s: type %(thousands)s or "
                "%(decimal)s."
            ),
            code="ambiguous",
            params={
                "value": text.strip(),
                "thousands": digits + fraction,
                "decimal": _decimal_hint(as_decimal),
            },
        )
    try:
        return Decimal(sign + (digits or "0") + ("." + fraction if fraction else ""))
    except InvalidOperation:  # pragma: no cover - the checks above leave only digits
        raise ValidationError(
            _("Type the amount as a number, for example 12.50 or 12,50."), code="invalid"
        ) from None


class AmountTextInput(forms.TextInput):
    """A text box for an amount: phones show digits, browsers send what was typed."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            {"inputmode": "decimal", "autocomplete": "off", "size": 12, **(attrs or {})}
        )


class AmountTextField(forms.Field):
    """An amount typed as text and read by :func:`parse_amount_text` into a ``Decimal``."""

    widget = AmountTextInput

    def prepare_value(self, value: Any) -> Any:
        return getattr(value, "amount", value)

    def to_python(self, value: Any) -> Decimal | None:
        if isinstance(value, Decimal):
            return value
        if value in self.empty_values or not str(value).strip():
            return None
        return parse_amount_text(str(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            new = self.to_python(data)
        except ValidationError:
            return True
        old: object = getattr(initial, "amount", initial)
        if isinstance(old, str):
            old = self.to_python(old)
        return old != new


class AmountField(AmountTextField):
    """A positive amount to move, refused by the same rules as ``facade.transfer``.

    The number of decimal places depends on the currency, which the form
    knows; forms call :func:`check_places` once it is known.
    """

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if value is not None:
            try:
                amounts.parse_amount(value)
            except InvalidAmount as exc:
                raise ValidationError(str(exc), code="invalid_amount") from exc
        return value


class CreditLimitField(AmountTextField):
    """A credit limit: zero or more, typed as text; empty means no limit."""

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if value is not None and value < 0:
            raise ValidationError(
                _("A credit limit cannot be negative: give zero, a positive amount, or nothing."),
                code="negative",
            )
        return value


def check_places(form: forms.Form, amount: Any, currency: str) -> None:
    """Add an amount error to ``form`` when ``amount`` has too many decimal places."""
    if amount is None:
        return
    try:
        amounts.check_places(amount, currency)
    except InvalidAmount as exc:
        form.add_error("amount", ValidationError(str(exc), code="invalid_amount"))
