"""A transfer as the API answers it (with what of it was reversed), and a repayment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ... import amounts
from ...models import Transfer
from ..errors import money_data
from ..fields import (
    AccountIdField,
    MomentField,
    MoneyField,
    MoneySerializer,
)
from .common import (
    EFFECTIVE_AT_HELP,
    notified_at_field,
    read_only_metadata,
    related,
)


class TransferSerializer(serializers.ModelSerializer[Transfer]):
    """A transfer: what moved, from where to where, and what of it was reversed."""

    # (The docstring is the schema's description.) For many transfers, the
    # context gives what was reversed of each ({"reversed":
    # reversed_totals(transfers)}), read in one query.

    # The "type: ignore"s on fields named source and parent: DRF's stubs type
    # Field.source (the attribute path) and Field.parent (the serializer a
    # field is bound to) on every field, which a field of that name shadows.
    # (At run time the declared fields are taken out of the class.)

    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True)
    amount = MoneyField()
    parent = related("reference", _("The transfer this one reverses (null: not a reversal)."))  # type: ignore[assignment]
    reversed_amount = serializers.SerializerMethodField(
        help_text=_("How much of this transfer was reversed so far.")
    )
    reversible_amount = serializers.SerializerMethodField(
        help_text=_("What can still be reversed (zero for a reversal).")
    )
    effective_at = MomentField(read_only=True, help_text=EFFECTIVE_AT_HELP)
    metadata = read_only_metadata(
        _(
            "As the request gave it ({} when none); a reversal's or a capture's "
            "default: the original's."
        )
    )
    notified_at = notified_at_field(_("transfer"))

    class Meta:
        model = Transfer
        fields = [
            "reference",
            "source",
            "destination",
            "amount",
            "parent",
            "merchant_reference",
            "description",
            "created",
            "effective_at",
            "reversed_amount",
            "reversible_amount",
            "metadata",
            "notified_at",
        ]
        read_only_fields = fields

    def _reversed(self, transfer: Transfer) -> Money:
        # Many transfers: what reversed_totals() read for all of them at once.
        known: dict[int, Decimal] | None = self.context.get("reversed")
        if known is not None:
            return amounts.money(known.get(transfer.pk, Decimal(0)), transfer.currency)
        # One query for both amounts.
        cache: dict[int, Money] = self.__dict__.setdefault("_reversed_cache", {})
        if transfer.pk not in cache:
            cache[transfer.pk] = transfer.reversed_amount()
        return cache[transfer.pk]

    @extend_schema_field(MoneySerializer)
    def get_reversed_amount(self, transfer: Transfer) -> dict[str, str] | None:
        return money_data(self._reversed(transfer))

    @extend_schema_field(MoneySerializer)
    def get_reversible_amount(self, transfer: Transfer) -> dict[str, str] | None:
        if transfer.is_reversal:
            return money_data(amounts.money(Decimal(0), transfer.currency))
        return money_data(transfer.amount - self._reversed(transfer))


def reversed_totals(transfers: list[Transfer]) -> dict[int, Decimal]:
    """What was reversed of each transfer, by id, in one query (summed in Python, exactly)."""
    totals: dict[int, Decimal] = {}
    if not transfers:
        return totals
    rows = Transfer.objects.filter(parent__in=[t.pk for t in transfers]).values_list(
        "parent", "amount"
    )
    for parent, amount in rows:
        totals[parent] = totals.get(parent, Decimal(0)) + amount
    return totals


class RepaymentSerializer(serializers.Serializer[dict[str, Any]]):
    """What a repayment did: the transfer that repaid the debt, or none when there was none."""

    transfer = TransferSerializer(
        allow_null=True, help_text=_("The transfer that repaid; null: there was no debt.")
    )
    amount = MoneyField(help_text=_("What was repaid: zero when there was no debt."))
    debt = MoneyField(help_text=_("What the destination owed when the repayment was judged."))
