"""A batch as the API answers it: what became of each of its requests, and its transfers."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnList

from ...models import Batch, Transfer
from ..errors import error_body
from ..schema import ErrorSerializer
from .common import (
    listed,
    read_only_metadata,
    related,
)
from .transfers import TransferSerializer, reversed_totals


@extend_schema_field(
    {"type": "string", "enum": ["posted", "refused", "skipped"]}, component_name="BatchItemStatus"
)
class BatchItemStatusField(serializers.CharField):
    """What became of a request of a batch."""


class BatchItemSerializer(serializers.Serializer[dict[str, Any]]):
    """One request of a batch, at its position, and what became of it."""

    index = serializers.IntegerField(help_text=_("The request's position, from 0."))
    status = BatchItemStatusField(
        help_text=_(
            "posted; refused (an independent batch's request the ledger refused); skipped "
            "(a batch reversing another: a transfer already fully reversed)."
        )
    )
    transfer = serializers.CharField(
        allow_null=True, help_text=_("The posted transfer's reference (null: none).")
    )
    error = ErrorSerializer(
        allow_null=True,
        help_text=_(
            "Why it was refused, as the API's errors (code, message, facts); in the answer "
            "to the request that posted the batch only: the refusal is not kept."
        ),
    )


class BatchSerializer(serializers.ModelSerializer[Batch]):
    """Transfers posted together, under one set of locks and one commit."""

    # (The docstring is the schema's description.) In the answer to the
    # request that posted the batch, the context gives the ledger's refusals
    # of its requests by position ({"refusals": {1: exc}}): they are not kept.

    reverses = related("reference", _("The batch this one reverses (null: none)."))
    atomic = serializers.BooleanField(
        read_only=True, help_text=_("Linked (all or nothing), or independent requests.")
    )
    size = serializers.IntegerField(read_only=True, help_text=_("How many transfers were asked."))
    items = serializers.SerializerMethodField(help_text=_("Each request, in order."))
    transfers = serializers.SerializerMethodField(
        help_text=_("The posted transfers, in request order.")
    )
    metadata = read_only_metadata(
        _("The batch's own metadata ({} when none); each transfer has its own.")
    )

    class Meta:
        model = Batch
        fields = [
            "reference",
            "atomic",
            "size",
            "reverses",
            "description",
            "created",
            "metadata",
            "items",
            "transfers",
        ]
        read_only_fields = fields

    def _posted(self, batch: Batch) -> list[Transfer]:
        cache: dict[int, list[Transfer]] = self.__dict__.setdefault("_posted_cache", {})
        if batch.pk not in cache:
            cache[batch.pk] = list(batch.transfers.select_related("parent"))
        return list(cache[batch.pk])

    @extend_schema_field(BatchItemSerializer(many=True))
    def get_items(self, batch: Batch) -> list[dict[str, Any]]:
        posted = {t.batch_position: t.reference for t in self._posted(batch)}
        refusals = self.context.get("refusals", {})
        items = []
        for index in range(batch.size):
            reference = posted.get(index)
            if reference is not None:
                status, error = "posted", None
            else:
                status = "skipped" if batch.reverses_id is not None else "refused"
                exc = refusals.get(index)
                error = error_body(exc) if exc is not None else None
            items.append({"index": index, "status": status, "transfer": reference, "error": error})
        return items

    @extend_schema_field(TransferSerializer(many=True))
    def get_transfers(self, batch: Batch) -> ReturnList[Any]:
        transfers = self._posted(batch)
        context = {**self.context, "reversed": reversed_totals(transfers)}
        return listed(TransferSerializer, transfers, context)
