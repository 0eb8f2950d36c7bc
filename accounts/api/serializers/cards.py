"""A gift card's balance as the API answers it, in the balance check page's words."""

from __future__ import annotations

from typing import Any

from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ...codes import format_code
from ...exceptions import StrOrPromise
from ...models import Account
from ..fields import MoneyField
from .accounts import AccountStatusField

#: What the balance check says of a card, as its HTML page does.
CARD_STATES = {
    "closed": _("This card is closed and can no longer be used."),
    "frozen": _("This card is frozen and cannot be used for now. Please contact us."),
    "expired": _("This card expired on %(end)s: its balance can no longer be spent."),
    "not_yet_active": _("This card can be used from %(start)s."),
    "ready": _("Ready to use."),
    "ready_to_spend": _("Ready to use: %(available)s to spend."),
}


class CardBalanceSerializer(serializers.Serializer[dict[str, Any]]):
    """A gift card's balance as the balance check shows it."""

    code = serializers.CharField(help_text=_("The code, in groups: 7KQ2-M9XD-HT4R-WB3N."))
    currency = serializers.CharField()
    balance = MoneyField()
    held = MoneyField(help_text=_("Reserved for orders in progress."))
    available = MoneyField(allow_null=True, help_text=_("What can be spent now; null: no limit."))
    status = AccountStatusField()
    state = serializers.ChoiceField(
        choices=[
            (name, name) for name in ("closed", "frozen", "expired", "not_yet_active", "ready")
        ],
        help_text=_("What the card can do now."),
    )
    message = serializers.CharField(help_text=_("The same sentence the balance check page shows."))
    start_date = serializers.DateTimeField(allow_null=True)
    end_date = serializers.DateTimeField(allow_null=True)


def card_balance(card: Account, code: str) -> dict[str, Any]:
    """The data of :class:`CardBalanceSerializer` for ``card``."""
    message: StrOrPromise
    if card.is_closed():
        state, message = "closed", CARD_STATES["closed"]
    elif card.is_frozen():
        state, message = "frozen", CARD_STATES["frozen"]
    elif card.is_expired():
        state = "expired"
        message = CARD_STATES["expired"] % {"end": date_format(card.end_date, "DATE_FORMAT")}
    elif not card.in_window():
        state = "not_yet_active"
        message = CARD_STATES["not_yet_active"] % {
            "start": date_format(card.start_date, "DATE_FORMAT")
        }
    elif card.available_amount is None:
        state, message = "ready", CARD_STATES["ready"]
    else:
        state = "ready"
        message = CARD_STATES["ready_to_spend"] % {"available": card.available_amount}
    return {
        "code": format_code(code),
        "currency": card.currency,
        "balance": card.balance,
        "held": card.held,
        "available": card.available_amount,
        "status": card.status,
        "state": state,
        "message": str(message),
        "start_date": card.start_date,
        "end_date": card.end_date,
    }
