"""
Forms for the admin: editing accounts, moving money and filtering statements.

The money forms check amounts with ``accounts.amounts``, the same code the
facade uses, so a bad amount is a form error before anything is locked. The
facade still makes every decision that depends on the database (status,
dates, credit limit, what is left to reverse) under its row locks; the
errors it raises are added to the form by :meth:`MoveMoneyForm.save`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _

from . import amounts, facade
from .codes import normalize_code
from .conf import conf
from .exceptions import (
    AccountException,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
)
from .fields import AmountFormField
from .models import Account, Transfer

#: Facade errors about the amount itself; the forms show them on the amount field.
AMOUNT_ERRORS = (InvalidAmount, InsufficientFunds, InvalidReversal)

TOKEN_ALPHABET = "0123456789abcdef"
TOKEN_LENGTH = 32


def currency_choices() -> list[tuple[str, str]]:
    # A callable, so that ACCOUNTS_CURRENCIES is read when the form is used.
    return [(code, code) for code in conf.CURRENCIES]


def new_token() -> str:
    return get_random_string(TOKEN_LENGTH, TOKEN_ALPHABET)


class AmountField(forms.DecimalField):
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


def check_places(form: forms.Form, amount: Any, currency: str) -> None:
    """Add an amount error to ``form`` when ``amount`` has too many decimal places."""
    if amount is None:
        return
    try:
        amounts.check_places(amount, currency)
    except InvalidAmount as exc:
        form.add_error("amount", ValidationError(str(exc), code="invalid_amount"))


class AccountForm(forms.ModelForm):
    """Create or edit an account. Balance and status are not fields: only the
    facade changes a balance, and status changes go through the locked
    ``freeze()``, ``thaw()`` and ``close()`` (the admin's actions)."""

    currency = forms.ChoiceField(label=_("Currency"), choices=currency_choices)
    credit_limit = AmountFormField(
        label=_("Credit limit"),
        required=False,
        help_text=_(
            "How far the balance may go below zero; empty means no limit. Lowering it "
            "below the current debt is allowed and only blocks further debits."
        ),
    )

    class Meta:
        model = Account
        fields = [
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
        ]


class MoveMoneyForm(forms.Form):
    """Base of the forms that move money: what every transfer records.

    ``token`` makes a submission idempotent: it is generated when the form is
    shown, so a double click or a resubmitted page posts the same transfer
    once (the facade answers the repeat with the original transfer).
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
        return self.cleaned_data

    def idempotency_key(self) -> str | None:
        token = self.cleaned_data.get("token")
        return "admin:%s" % token if token else None

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

    def post(self, user: Any) -> Transfer:
        source = Account.objects.source_account(self.account.currency)
        return self._transfer(source, self.account, user)


class WithdrawForm(TopUpForm):
    """Move money off an account, back to the source account of its currency."""

    def post(self, user: Any) -> Transfer:
        source = Account.objects.source_account(self.account.currency)
        return self._transfer(self.account, source, user)


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

    def post(self, user: Any) -> Transfer:
        data = self.cleaned_data
        return self._transfer(data["source"], data["destination"], user)


class ReverseForm(MoveMoneyForm):
    """Move (part of) a transfer back; an empty amount reverses whatever is left."""

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
    """The date range of a statement; both ends are whole days and optional."""

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

    def clean(self) -> dict[str, Any]:
        super().clean()
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if start and end and start > end:
            raise ValidationError(_("The start date is after the end date."), code="bad_range")
        return self.cleaned_data


class ReleaseForm(forms.Form):
    """Confirm releasing a hold: the money it reserves is free again; nothing moves."""

    def __init__(self, *args: Any, hold: Any, **kwargs: Any) -> None:
        self.hold = hold
        super().__init__(*args, **kwargs)

    def save(self, user: Any) -> Any:
        """Release the hold as ``user``; on a refusal add the reason to the form, return None."""
        try:
            return facade.release(self.hold, user=user)
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
