"""A hold as the API answers it."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ...models import Hold
from ..fields import (
    AccountIdField,
    MomentField,
    MoneyField,
)
from .common import (
    EFFECTIVE_AT_HELP,
    TextChoicesField,
    notified_at_field,
    read_only_metadata,
    related,
)


class HoldStatusField(TextChoicesField, component_name="HoldStatus"):
    """A hold's status: active, captured, released or expired."""

    text_choices = Hold.Status


class HoldSerializer(serializers.ModelSerializer[Hold]):
    """Money reserved on ``source`` for a later capture to ``destination``."""

    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True)
    amount = MoneyField()
    status = HoldStatusField(read_only=True)
    capture = related("reference", _("The transfer that captured the hold (null until captured)."))
    effective_at = MomentField(read_only=True, help_text=EFFECTIVE_AT_HELP)
    metadata = read_only_metadata(_("As the request gave it ({} when none)."))
    notified_at = notified_at_field(_("hold"))

    class Meta:
        model = Hold
        fields = [
            "reference",
            "source",
            "destination",
            "amount",
            "status",
            "expires_at",
            "merchant_reference",
            "description",
            "created",
            "resolved_at",
            "capture",
            "effective_at",
            "metadata",
            "notified_at",
        ]
        read_only_fields = fields
