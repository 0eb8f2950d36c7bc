"""An account's history as the API answers it: its statement and its declined payments."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...models import Decline, Transaction
from ..fields import (
    AccountIdField,
    MetadataField,
    MomentField,
    MoneyField,
    MoneySerializer,
)
from .accounts import PeriodField
from .common import TextChoicesField, read_only_metadata, related

# The statement ----------------------------------------------------------------------


class StatementLineSerializer(serializers.ModelSerializer[Transaction]):
    """One leg on the account: signed amount (negative: money out) and the balance after it."""

    transfer: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference", read_only=True
    )
    amount = MoneyField(help_text=_("Negative when money left the account."))
    balance_after = MoneyField(help_text=_("The account's balance right after this line."))
    description = serializers.CharField(source="transfer.description", read_only=True)
    merchant_reference = serializers.CharField(
        source="transfer.merchant_reference", read_only=True, allow_null=True
    )
    is_reversal = serializers.BooleanField(source="transfer.is_reversal", read_only=True)
    effective_at = MomentField(
        source="transfer.effective_at",
        read_only=True,
        help_text=_("The transfer's effective date: when it happened in the world."),
    )
    metadata = MetadataField(
        source="transfer.metadata", read_only=True, help_text=_("The transfer's metadata.")
    )

    class Meta:
        model = Transaction
        fields = [
            "id",
            "transfer",
            "created",
            "amount",
            "balance_after",
            "description",
            "merchant_reference",
            "is_reversal",
            "effective_at",
            "metadata",
        ]
        read_only_fields = fields


class StatementSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of an account's statement, oldest (or newest) line first."""

    account = serializers.IntegerField()
    currency = serializers.CharField()
    start = serializers.DateTimeField(
        allow_null=True, help_text=_("Start of the period (null: from the first line).")
    )
    end = serializers.DateTimeField(help_text=_("End of the period (default: now)."))
    date_field = serializers.ChoiceField(
        choices=["created", "effective_at"],
        help_text=_(
            "What start and end apply to and the lines are sorted by: created (when "
            "posted) or effective_at (when the transfer happened in the world)."
        ),
    )
    opening_balance = MoneyField(help_text=_("The balance at the start of the period."))
    closing_balance = MoneyField(help_text=_("The balance at the end of the period."))
    next = serializers.URLField(allow_null=True, help_text=_("The next (later) page, or null."))
    previous = serializers.URLField(
        allow_null=True, help_text=_("The previous (earlier) page, or null.")
    )
    results = StatementLineSerializer(many=True)


# Declined payments ----------------------------------------------------------------------


class DeclineOperationField(TextChoicesField, component_name="DeclineOperation"):
    """What was declined: a transfer, a hold, a capture, a request of a batch, a repayment."""

    text_choices = Decline.Operation


class DeclineFactsSerializer(serializers.Serializer[dict[str, Any]]):
    """The refusal's figures, as the ledger judged them; only those that apply are present."""

    available = MoneySerializer(required=False, help_text=_("What could be spent then."))
    credit_limit = MoneySerializer(required=False, help_text=_("The account's credit limit."))
    period = PeriodField(required=False, help_text=_("A spending limit's period."))
    limit = MoneySerializer(required=False, help_text=_("The spending limit of that period."))
    used = MoneySerializer(required=False, help_text=_("Spent in that period before."))
    end_date = serializers.DateTimeField(required=False, help_text=_("The account's end."))
    start_date = serializers.DateTimeField(required=False, help_text=_("The account's start."))


#: The facts of a decline that are amounts, in the decline's currency.
DECLINE_MONEY_FACTS = ("available", "credit_limit", "limit", "used")


class DeclineSerializer(serializers.ModelSerializer[Decline]):
    """A payment the ledger refused by its rules, and why."""

    operation = DeclineOperationField(read_only=True)
    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True, allow_null=True)
    hold = related("reference", _("The hold a declined capture was of (null: not a capture)."))
    amount = MoneyField(
        allow_null=True, help_text=_("The amount asked for (null: a capture of all the hold).")
    )
    reason = serializers.CharField(
        read_only=True,
        help_text=_(
            "The refusal's stable code, as the API's errors have it: insufficient_funds, "
            "spending_limit_reached, account_frozen, ..."
        ),
    )
    reason_text = serializers.CharField(
        read_only=True, help_text=_('The reason in a few words: "daily limit reached".')
    )
    facts = serializers.SerializerMethodField()
    metadata = read_only_metadata(_("The metadata of the refused request, as it gave it."))

    class Meta:
        model = Decline
        fields = [
            "id",
            "operation",
            "source",
            "destination",
            "hold",
            "amount",
            "currency",
            "reason",
            "reason_text",
            "facts",
            "merchant_reference",
            "description",
            "created",
            "metadata",
        ]
        read_only_fields = fields

    @extend_schema_field(DeclineFactsSerializer)
    def get_facts(self, decline: Decline) -> dict[str, Any]:
        """The stored facts, their amounts with the decline's currency."""
        facts: dict[str, Any] = {}
        for name, value in (decline.facts or {}).items():
            if name in DECLINE_MONEY_FACTS:
                facts[name] = {"amount": str(value), "currency": decline.currency}
            elif name in DeclineFactsSerializer._declared_fields:
                facts[name] = value
        return facts


class DeclinePageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of an account's declined payments, newest first."""

    account = serializers.IntegerField()
    next = serializers.URLField(allow_null=True, help_text=_("The next (older) page, or null."))
    previous = serializers.URLField(
        allow_null=True, help_text=_("The previous (newer) page, or null.")
    )
    results = DeclineSerializer(many=True)
