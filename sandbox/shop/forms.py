"""The demo shop's forms: paying for the basket, refunding a payment."""

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from accounts.codes import format_code, normalize_code
from accounts.exceptions import CodeLookupBlocked
from accounts.forms import AmountField, AmountTextInput, check_places, new_token
from accounts.lookup import LookupThrottle, client_address, lookup_code
from accounts.models import Account, Transfer

from .models import Order

#: Gift cards one order may use.
MAX_CARDS = 5


def token_field() -> forms.CharField:
    """A one-time token, made when the form is shown; it makes posting the form twice harmless."""
    return forms.CharField(
        widget=forms.HiddenInput,
        initial=new_token,
        validators=[RegexValidator(r"^[0-9a-f]{32}\Z")],
    )


class PaymentForm(forms.Form):
    """How the customer pays the basket. ``token`` becomes the order's idempotency key."""

    cards = forms.CharField(
        label=_("Gift card codes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_("One or more, separated by commas or on separate lines."),
    )
    account = forms.ModelChoiceField(
        label=_("Then pay from my account"),
        queryset=Account.objects.none(),
        required=False,
        empty_label=_("No, thanks"),
    )
    token = token_field()

    def __init__(self, *args: Any, request: Any, basket: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request, self.basket = request, basket
        # Only accounts this customer may use, in the basket's currency.
        self.fields["account"].queryset = (
            Account.objects.for_user(request.user).filter(currency=basket.currency).open()
        )

    def clean_cards(self) -> list[Account]:
        """The gift cards, looked up by code; failed lookups count against guessing."""
        codes = [c for c in re.split(r"[,;\n]+", self.cleaned_data["cards"]) if normalize_code(c)]
        if len(codes) > MAX_CARDS:
            raise ValidationError(_("Use at most %(max)s gift cards."), params={"max": MAX_CARDS})
        cards: list[Account] = []
        for code in codes:
            try:
                card = lookup_code(self.request, code)
            except CodeLookupBlocked as exc:
                raise ValidationError(exc.user_message, code="blocked") from exc
            if card is None or not card.can_be_authorised_by(self.request.user):
                errors = [
                    ValidationError(
                        _("No gift card has the code %(code)s."),
                        code="not_found",
                        params={"code": format_code(code)},
                    )
                ]
                retry_after = LookupThrottle(client_address(self.request)).retry_after()
                if retry_after is not None:
                    # That was the last attempt allowed: say so now.
                    errors.append(ValidationError(CodeLookupBlocked(retry_after).user_message))
                raise ValidationError(errors)
            if card.currency != self.basket.currency:
                raise ValidationError(
                    _("Gift card %(code)s is in %(card)s; this shop sells in %(shop)s."),
                    params={
                        "code": format_code(card.code),
                        "card": card.currency,
                        "shop": self.basket.currency,
                    },
                )
            if card not in cards:
                cards.append(card)
        return cards

    def clean(self) -> dict[str, Any]:
        super().clean()
        token = self.cleaned_data.get("token")
        # An empty basket is fine only when this form already placed its order.
        placed = Order.objects.filter(idempotency_key=token, user=self.request.user)
        if not self.basket and not placed.exists():
            raise ValidationError(_("Your basket is empty."), code="empty")
        return self.cleaned_data


class RefundForm(forms.Form):
    """How much of one payment to give back.

    The amount is always given: the order page has a separate "Refund all"
    button that posts the amount left as it showed it, so refunding
    everything is a choice the customer makes, never what an empty box means.
    """

    amount = AmountField(
        label=_("Amount"),
        error_messages={"required": _("Enter the amount to refund, or use “Refund all”.")},
        widget=AmountTextInput(attrs={"size": 8, "placeholder": "0.00"}),
    )
    token = token_field()

    def __init__(self, *args: Any, payment: Transfer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.payment = payment

    def clean(self) -> dict[str, Any]:
        super().clean()
        check_places(self, self.cleaned_data.get("amount"), self.payment.currency)
        return self.cleaned_data
