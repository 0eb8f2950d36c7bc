"""
Forms for the admin: moving money, releasing holds and filtering statements.

The money forms check amounts with ``accounts.amounts`` (through
:mod:`accounts.amount_fields`), the same code the facade uses, so a bad
amount is a form error before anything is locked. The facade still makes
every decision that depends on the database (status, dates, credit limit,
what is left to reverse) under its row locks; the errors it raises are added
to the form by :meth:`MoveMoneyForm.save`.

The account form is in :mod:`accounts.account_forms` and the amount fields
in :mod:`accounts.amount_fields`; both are importable from here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _

from . import amounts, facade

# Re-exported (``X as X``): the sandbox, the tests and the README import these from here.
from .account_forms import AccountForm as AccountForm
from .amount_fields import AmountField as AmountField
from .amount_fields import AmountTextInput as AmountTextInput
from .amount_fields import CreditLimitField as CreditLimitField
from .amount_fields import check_places as check_places
from .amount_fields import parse_amount_text as parse_amount_text
from .codes import normalize_code
from .exceptions import (
    AccountException,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidReversal,
)
from .models import Account, Hold, Transfer

if TYPE_CHECKING:
    from .exceptions import StrOrPromise

#: Facade errors about the amount itself; the forms show them on the amount field.
AMOUNT_ERRORS = (InvalidAmount, InsufficientFunds, InvalidReversal)

TOKEN_ALPHABET = "0123456789abcdef"
TOKEN_LENGTH = 32


def new_token() -> str:
    return get_random_string(TOKEN_LENGTH, TOKEN_ALPHABET)


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

    def refuse_more_than(self, left: Any, message: StrOrPromise) -> None:
        """Add an amount error when the amount is more than ``left`` (a ``Money``), with
        ``message``, which may name it as ``%(left)s``."""
        amount = self.cleaned_data.get("amount")
        if amount is not None and amount > left.amount and "amount" not in self.errors:
            error = ValidationError(message, code="too_much", params={"left": left})
            self.add_error("amount", error)

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
        """Move the amount from :meth:`accounts`' source to their destination."""
        source, destination = self.accounts()
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
        source: Account | None = self.cleaned_data.get("source")
        destination: Account | None = self.cleaned_data.get("destination")
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
        self.refuse_more_than(left, _("Only %(left)s is left to reverse."))
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
