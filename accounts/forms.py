"""
Forms for the admin: editing accounts, moving money and filtering statements.

Amounts are typed as text and read here, on the server (:func:`parse_amount_text`):
a browser's number input silently drops a decimal comma (``1,50`` is sent
as ``150``), so none is used. A decimal comma is read as a decimal point, a
thousands separator is accepted only where it cannot be misread, and
anything else is refused with a message saying what to type.

The money forms check amounts with ``accounts.amounts``, the same code the
facade uses, so a bad amount is a form error before anything is locked. The
facade still makes every decision that depends on the database (status,
dates, credit limit, what is left to reverse) under its row locks; the
errors it raises are added to the form by :meth:`MoveMoneyForm.save`.

Whatever changes how much can be spent is moving money: :class:`AccountForm`
lets only a user with ``accounts.move_money`` raise or clear a credit limit,
create an account that may spend without being topped up, or put a code on
an account that holds money and has no users (whoever holds the code could
spend it). Lowering a limit stays open to everyone who may edit accounts.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, router, transaction
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _

from . import amounts, facade
from .codes import normalize_code
from .conf import conf
from .exceptions import (
    AccountException,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
)
from .models import Account, Hold, Transfer

#: The permission that guards everything that changes how much can be spent.
MOVE_MONEY_PERMISSION = "accounts.move_money"

#: Facade errors about the amount itself; the forms show them on the amount field.
AMOUNT_ERRORS = (InvalidAmount, InsufficientFunds, InvalidReversal)

TOKEN_ALPHABET = "0123456789abcdef"
TOKEN_LENGTH = 32


def currency_choices() -> list[tuple[str, str]]:
    # A callable, so that ACCOUNTS_CURRENCIES is read when the form is used.
    return [(code, code) for code in conf.CURRENCIES]


def new_token() -> str:
    return get_random_string(TOKEN_LENGTH, TOKEN_ALPHABET)


def may_move_money(user: Any) -> bool:
    """Whether ``user`` has ``accounts.move_money`` (``None``: nobody, so no)."""
    return user is not None and user.has_perm(MOVE_MONEY_PERMISSION)


# Amounts typed by people ------------------------------------------------------------

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
        old = getattr(initial, "amount", initial)
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


# Accounts ---------------------------------------------------------------------------

#: The account fields an edit form carries, as they were shown (see AccountForm.shown).
EDITABLE_FIELDS = [
    "name",
    "code",
    "description",
    "account_type",
    "primary_user",
    "secondary_users",
    "currency",
    "credit_limit",
    "start_date",
    "end_date",
    "metadata",
]


def account_snapshot(account: Account) -> dict[str, Any]:
    """The editable fields of ``account`` as plain JSON values, to compare two readings."""
    snapshot: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        field = cast(models.Field, Account._meta.get_field(name))
        if field.many_to_many:
            snapshot[name] = sorted(
                account.secondary_users.values_list("pk", flat=True) if account.pk else []
            )
            continue
        value = getattr(account, field.attname)
        if isinstance(value, (dict, list)):
            # JSON (metadata): key order is not kept by every database.
            snapshot[name] = json.dumps(value, sort_keys=True)
            continue
        value = getattr(value, "amount", value)  # a Money, in its currency's places
        snapshot[name] = None if value is None else str(value)
    return snapshot


class AccountForm(forms.ModelForm):
    """Create or edit an account. Balance and status are not fields: only the
    facade changes a balance, and status changes go through the locked
    ``freeze()``, ``thaw()`` and ``close()`` (the admin's actions).

    ``user`` is who is editing: raising or clearing a credit limit, creating
    an account that can spend before it is topped up, and putting a code on
    a funded account without users need their ``accounts.move_money``
    permission (without a user, nobody has it). The admin passes the
    request's user.

    An edit carries the values it showed (the hidden ``shown`` field): if
    someone else changed the account since, the form is refused instead of
    writing the old values back.
    """

    currency = forms.ChoiceField(label=_("Currency"), choices=currency_choices)
    credit_limit = CreditLimitField(
        label=_("Credit limit"),
        required=False,
        help_text=_(
            "How far the balance may go below zero; empty means no limit. Lowering it "
            "below the current debt is allowed and only blocks further debits. Raising "
            "or clearing it needs the permission to move money."
        ),
    )
    shown = forms.CharField(widget=forms.HiddenInput, required=False)

    #: Who is editing (see the class docstring); the admin sets it per request.
    user: Any = None

    class Meta:
        model = Account
        fields = EDITABLE_FIELDS
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "metadata": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.user = user
        if self.instance.pk is not None and not self.is_bound:
            self.initial["shown"] = json.dumps(account_snapshot(self.instance), sort_keys=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        current = self._current() if self.instance.pk is not None else None
        if current is not None:
            self._check_not_stale(current)
        if not may_move_money(self.user):
            self._check_spending_unchanged(current, cleaned)
        return cleaned

    def _current(self) -> Account | None:
        """The account as stored now; locked until the save commits when inside a transaction.

        The admin's change view is one transaction, so nobody can change the
        row between this check and the save.
        """
        using = router.db_for_write(Account, instance=self.instance)
        rows = Account.objects.using(using).filter(pk=self.instance.pk)
        if transaction.get_connection(using).in_atomic_block:
            rows = rows.select_for_update()
        return rows.first()

    def _check_not_stale(self, current: Account) -> None:
        shown = self.data.get(self.add_prefix("shown")) if self.is_bound else None
        if not shown:
            return  # a form built in code, not from the page it showed
        try:
            before = json.loads(shown)
        except ValueError:
            before = {}
        now = account_snapshot(current)
        changed = [name for name in EDITABLE_FIELDS if before.get(name) != now[name]]
        if changed:
            labels = ", ".join(
                str(cast(models.Field, Account._meta.get_field(name)).verbose_name)
                for name in changed
            )
            raise ValidationError(
                _(
                    "This account was changed by someone else after this page was opened "
                    "(%(fields)s). Nothing was saved: reload the page to see the current "
                    "values, then make your change again."
                ),
                code="stale",
                params={"fields": labels},
            )

    def _check_spending_unchanged(self, current: Account | None, cleaned: dict[str, Any]) -> None:
        """Refuse what only staff who may move money may do (see the class docstring)."""
        limit = cleaned.get("credit_limit") if "credit_limit" in self.fields else None
        if current is None:
            if "credit_limit" in self.fields and (limit is None or limit > 0):
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _(
                            "Only staff who may move money can create an account with a "
                            "credit limit or with no limit. Leave it at 0."
                        ),
                        code="move_money",
                    ),
                )
            return
        old_limit = amounts.raw(current, "credit_limit")
        if "credit_limit" in self.fields and "credit_limit" in cleaned:
            if limit is None and old_limit is not None:
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _("Only staff who may move money can remove an account's credit limit."),
                        code="move_money",
                    ),
                )
            elif limit is not None and old_limit is not None and limit > old_limit:
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _(
                            "Only staff who may move money can raise a credit limit "
                            "(%(limit)s now); it may be lowered."
                        ),
                        code="move_money",
                        params={"limit": amounts.money(old_limit, current.currency)},
                    ),
                )
        else:
            limit = old_limit
        if "account_type" in self.fields and "account_type" in cleaned:
            self._check_type_limits(current, cleaned.get("account_type"))
        balance = amounts.raw(current, "balance") or Decimal(0)
        can_spend = balance > 0 or limit is None or limit > 0
        code = cleaned.get("code") if "code" in self.fields else current.code
        code = normalize_code(code or "") or None
        primary = cleaned.get("primary_user") if "primary_user" in self.fields else None
        if "primary_user" not in self.fields:
            primary = current.primary_user_id
        if "secondary_users" in self.fields:
            secondary = bool(cleaned.get("secondary_users"))
        else:
            secondary = current.secondary_users.exists()
        had_users = current.primary_user_id is not None or current.secondary_users.exists()
        code_changed = code != (normalize_code(current.code or "") or None)
        if code and can_spend and not primary and not secondary:
            if code_changed or had_users:
                self.add_error(
                    "code" if code_changed else None,
                    ValidationError(
                        _(
                            "Only staff who may move money can put a code on an account "
                            "that holds money and has no users: anyone holding the code "
                            "could spend it."
                        ),
                        code="move_money",
                    ),
                )

    def _check_type_limits(self, current: Account, account_type: Any) -> None:
        """Moving an account to another type must not raise or remove a spending limit."""
        from .models import SpendingLimit

        new_type = getattr(account_type, "pk", account_type)
        if new_type == current.account_type_id:
            return
        limits = SpendingLimit.objects.using(current._state.db)
        before = limits.effective_for(current)
        moved = Account(pk=current.pk, role=current.role, account_type_id=new_type)
        after = limits.effective_for(moved)
        looser = [
            period
            for period, amount in before.items()
            if period not in after or after[period] > amount
        ]
        if looser:
            self.add_error(
                "account_type",
                ValidationError(
                    _(
                        "Only staff who may move money can move an account to a type whose "
                        "spending limits are higher or missing (%(periods)s)."
                    ),
                    code="move_money",
                    params={"periods": ", ".join(looser)},
                ),
            )


# Moving money -----------------------------------------------------------------------


class MoveMoneyForm(forms.Form):
    """Base of the forms that move money: what every transfer records.

    ``token`` makes a submission idempotent: it is generated when the form is
    shown and carried through the confirmation, so a double click, a
    resubmitted page or a browser's retry posts the same request, and the
    facade answers the repeat with the original transfer.
    """

    amount = AmountField(label=_("Amount"))
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea)
    merchant_reference = forms.CharField(
        label=_("Merchant reference"), required=False, max_length=128
    )
    token = forms.CharField(
        widget=forms.HiddenInput,
        required=False,
        initial=new_token,
        validators=[RegexValidator("^[0-9a-f]{%d}\\Z" % TOKEN_LENGTH)],
    )

    def currency(self) -> str | None:
        """The currency amounts are checked against, once known."""
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        super().clean()
        currency = self.currency()
        if currency is not None:
            check_places(self, self.cleaned_data.get("amount"), currency)
        if not self.cleaned_data.get("token"):
            # A form built without its page (e.g. in code) still posts once.
            self.cleaned_data["token"] = new_token()
        return self.cleaned_data

    def idempotency_key(self) -> str | None:
        token = self.cleaned_data.get("token")
        return "admin:%s" % token if token else None

    # The confirmation step.

    def amount_to_move(self) -> Any:
        """The exact amount the confirmed form will move, as a ``Money``."""
        currency = self.currency()
        assert currency is not None
        return amounts.money(self.cleaned_data["amount"], currency)

    def confirmation(self) -> Any:
        """One sentence saying exactly what confirming will do (valid forms only)."""
        source, destination = self.accounts()
        return _("Move %(amount)s from %(source)s to %(destination)s.") % {
            "amount": self.amount_to_move(),
            "source": source,
            "destination": destination,
        }

    def accounts(self) -> tuple[Any, Any]:
        """The source and destination the confirmed form will use."""
        raise NotImplementedError

    def confirmation_data(self) -> list[tuple[str, str]]:
        """The fields to carry through the confirmation, as (name, value) pairs.

        The amount is written out exactly (``12.50``), so the confirmed post
        cannot be read differently from what was confirmed.
        """
        data = []
        for name in self.fields:
            if name == "amount":
                value = self.amount_to_move().amount
                data.append((self.add_prefix(name), str(value)))
                continue
            value = self.cleaned_data.get(name)
            value = getattr(value, "pk", value)
            data.append((self.add_prefix(name), "" if value is None else str(value)))
        return data

    def existing(self) -> Transfer | None:
        """The transfer an earlier post of this very form made, if any."""
        key = self.idempotency_key()
        if key is None:
            return None
        return Transfer.objects.filter(idempotency_key=key).first()

    def save(self, user: Any) -> Transfer | None:
        """Post the transfer as ``user`` and return it; on a refusal, add the
        facade's message to the form and return ``None``. Call after ``is_valid()``."""
        try:
            return self.post(user)
        except IdempotencyConflict:
            self.add_error(
                None,
                _(
                    "This form was already submitted with other details. Open the form "
                    "again to move money once more."
                ),
            )
        except AccountException as exc:
            field = "amount" if isinstance(exc, AMOUNT_ERRORS) else None
            self.add_error(field, str(exc))
        return None

    def post(self, user: Any) -> Transfer:
        raise NotImplementedError

    def _transfer(self, source: Account, destination: Account, user: Any) -> Transfer:
        data = self.cleaned_data
        return facade.transfer(
            source,
            destination,
            data["amount"],
            user=user,
            merchant_reference=data["merchant_reference"] or None,
            description=data["description"],
            idempotency_key=self.idempotency_key(),
        )


class TopUpForm(MoveMoneyForm):
    """Move money onto an account from the source account of its currency."""

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        self.account = account
        super().__init__(*args, **kwargs)

    def currency(self) -> str:
        return self.account.currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        try:
            self.accounts()
        except AccountException as exc:
            raise ValidationError(str(exc), code="no_source") from exc
        return self.cleaned_data

    def accounts(self) -> tuple[Account, Account]:
        return Account.objects.source_account(self.account.currency), self.account

    def post(self, user: Any) -> Transfer:
        source, destination = self.accounts()
        return self._transfer(source, destination, user)


class WithdrawForm(TopUpForm):
    """Move money off an account, back to the source account of its currency."""

    def accounts(self) -> tuple[Account, Account]:
        return self.account, Account.objects.source_account(self.account.currency)


class TransferForm(MoveMoneyForm):
    """Move money between any two accounts of the same currency."""

    field_order = ["source", "destination", "amount", "description", "merchant_reference"]

    def __init__(self, *args: Any, admin_site: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, label in (("source", _("From account")), ("destination", _("To account"))):
            # Search as you type (the accounts admin's search): a <select> of
            # every account would not scale.
            self.fields[name] = forms.ModelChoiceField(
                label=label,
                queryset=Account.objects.all(),
                widget=AutocompleteSelect(Transfer._meta.get_field(name), admin_site),
            )
        self.order_fields(self.field_order)

    def currency(self) -> str | None:
        source = self.cleaned_data.get("source")
        destination = self.cleaned_data.get("destination")
        if source is None or destination is None:
            return None
        if source == destination:
            raise ValidationError(_("Choose two different accounts."), code="same_account")
        if source.currency != destination.currency:
            raise ValidationError(
                _("%(source)s is in %(scur)s but %(destination)s is in %(dcur)s."),
                code="currency_mismatch",
                params={
                    "source": source,
                    "scur": source.currency,
                    "destination": destination,
                    "dcur": destination.currency,
                },
            )
        return source.currency

    def accounts(self) -> tuple[Account, Account]:
        return self.cleaned_data["source"], self.cleaned_data["destination"]

    def post(self, user: Any) -> Transfer:
        source, destination = self.accounts()
        return self._transfer(source, destination, user)


class ReverseForm(MoveMoneyForm):
    """Move (part of) a transfer back; an empty amount reverses whatever is left.

    The confirmation states the amount that is left when it is shown, and
    the confirmed form reverses exactly that: if another reversal got in
    between, the facade refuses instead of reversing a different amount.
    """

    amount = AmountField(
        label=_("Amount"),
        required=False,
        help_text=_("Leave empty to reverse everything that is left."),
    )
    description = forms.CharField(
        label=_("Description"),
        widget=forms.Textarea,
        help_text=_("Why the money is moved back; kept on the reversal."),
    )

    field_order = ["amount", "description", "merchant_reference"]

    def __init__(self, *args: Any, transfer: Transfer, **kwargs: Any) -> None:
        self.transfer = transfer
        super().__init__(*args, **kwargs)
        self.fields["merchant_reference"].help_text = _("Leave empty to keep the original's.")

    def currency(self) -> str:
        return self.transfer.currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        # What the confirmation would promise must be possible now; the
        # facade still decides, under its locks, when the form is confirmed.
        left = self.transfer.reversible_amount()
        amount = self.cleaned_data.get("amount")
        if self.transfer.parent_id is not None:
            raise ValidationError(
                _("Transfer %(reference)s is itself a reversal and cannot be reversed."),
                code="reversal",
                params={"reference": self.transfer.reference},
            )
        if not left.amount:
            raise ValidationError(
                _("Transfer %(reference)s has already been fully reversed."),
                code="reversed",
                params={"reference": self.transfer.reference},
            )
        if amount is not None and amount > left.amount and "amount" not in self.errors:
            self.add_error(
                "amount",
                ValidationError(
                    _("Only %(left)s is left to reverse."), code="too_much", params={"left": left}
                ),
            )
        return self.cleaned_data

    def amount_to_move(self) -> Any:
        amount = self.cleaned_data.get("amount")
        if amount is None:
            return self.transfer.reversible_amount()
        return amounts.money(amount, self.transfer.currency)

    def accounts(self) -> tuple[Any, Any]:
        return self.transfer.destination, self.transfer.source

    def confirmation(self) -> Any:
        amount = self.amount_to_move()
        return _(
            "Move %(amount)s from %(destination)s back to %(source)s, reversing transfer "
            "%(reference)s of %(original)s; %(left)s will be left to reverse."
        ) % {
            "amount": amount,
            "destination": self.transfer.destination,
            "source": self.transfer.source,
            "reference": self.transfer.reference,
            "original": self.transfer.amount,
            "left": self.transfer.reversible_amount() - amount,
        }

    def post(self, user: Any) -> Transfer:
        data = self.cleaned_data
        return facade.reverse(
            self.transfer,
            amount=data["amount"],
            user=user,
            merchant_reference=data["merchant_reference"] or None,
            description=data["description"],
            idempotency_key=self.idempotency_key(),
        )


class StatementFilterForm(forms.Form):
    """The date range of a statement; both ends are whole days and optional.

    ``date_field``: the date the range applies to and the rows are sorted by
    (``Account.statement``): when posted (the default) or when the movement
    happened (a card payment's transaction date).
    """

    start = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    end = forms.DateField(
        label=_("To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    date_field = forms.ChoiceField(
        label=_("By"),
        required=False,
        choices=[("created", _("Posting date")), ("effective_at", _("Transaction date"))],
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.cleaned_data["date_field"] = self.cleaned_data.get("date_field") or "created"
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if start and end and start > end:
            raise ValidationError(_("The start date is after the end date."), code="bad_range")
        return self.cleaned_data


class ReleaseForm(forms.Form):
    """Confirm releasing a hold: the money it reserves is free again; nothing moves.

    The form has no fields: the page that shows it states what releasing
    does, and posting it is the confirmation.
    """

    #: Set by :meth:`save` when the hold turned out to be released already
    #: (the confirmation posted twice): nothing to do, and nothing wrong.
    already_released = False

    def __init__(self, *args: Any, hold: Any, **kwargs: Any) -> None:
        self.hold = hold
        super().__init__(*args, **kwargs)

    def confirmation(self) -> Any:
        """What confirming will do."""
        if not self.hold.is_active:
            return _("Hold %(hold)s is %(status)s: there is nothing to release.") % {
                "hold": self.hold.reference,
                "status": self.hold.get_status_display().lower(),
            }
        return _(
            "Release hold %(hold)s: %(amount)s reserved on %(source)s for %(destination)s "
            "becomes available to spend again. No money moves."
        ) % {
            "hold": self.hold.reference,
            "amount": self.hold.amount,
            "source": self.hold.source,
            "destination": self.hold.destination,
        }

    def save(self, user: Any) -> Any:
        """Release the hold as ``user``; on a refusal add the reason to the form, return None."""
        try:
            return facade.release(self.hold, user=user)
        except HoldResolved as exc:
            if exc.hold.status == Hold.Status.RELEASED:
                self.already_released = True
            else:
                self.add_error(None, str(exc))
        except AccountException as exc:
            self.add_error(None, str(exc))
        return None


class BalanceCheckForm(forms.Form):
    """A gift card code as people type it: any case, with or without spaces and dashes."""

    code = forms.CharField(
        label=_("Gift card code"),
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "placeholder": "XXXX-XXXX-XXXX-XXXX",
            }
        ),
    )

    def clean_code(self) -> str:
        code = normalize_code(self.cleaned_data["code"])
        if not code:
            raise ValidationError(_("Enter the code printed on the card."), code="required")
        return code
