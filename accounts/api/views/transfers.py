"""Transfers: move money, read a transfer, reverse one."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from ... import facade
from ...models import Transfer
from .. import schema, serializers
from ..permissions import visible_transfers
from .base import DETAILS, LedgerView, MovingView, movement

TRANSFER_REFERENCE = schema.path_parameter("reference", str, "transfer's reference")


class TransferCreateView(LedgerView[Transfer]):
    serializer_class = serializers.TransferSerializer

    @schema.operation(
        "transfers_create",
        "transfers",
        "Move money",
        "Debit ``source`` and credit ``destination``. A customer may debit only an "
        "account they may use, and pay only into accounts the application allows "
        "(``ACCOUNTS_API_PAYMENT_POLICY``); users with ``accounts.move_money`` may move "
        "money between any accounts. Send an ``Idempotency-Key``: a retry of the same "
        "request answers with the same transfer and moves nothing.",
        {201: serializers.TransferSerializer},
        schema.moving(),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.TransferRequest,
        examples=[
            schema.request_example(
                "Pay from a wallet",
                {
                    "source": 7,
                    "destination": 8,
                    "amount": "5.00",
                    "currency": "GBP",
                    "description": "Pocket money",
                    "metadata": {"note": "for the cinema"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data, passed = self.arguments(serializers.TransferRequest, *DETAILS)
        transfer = facade.transfer(*movement(data), allow_partial=data["allow_partial"], **passed)
        return self.transfer_created(transfer)


class TransferDetailView(LedgerView[Transfer]):
    serializer_class = serializers.TransferSerializer

    @schema.operation(
        "transfers_retrieve",
        "transfers",
        "A transfer",
        "A transfer on an account the user may use; any transfer for users with "
        "``accounts.view_transfer`` or ``accounts.move_money``.",
        {200: serializers.TransferSerializer},
        schema.READ_ONE,
        parameters=[TRANSFER_REFERENCE],
    )
    def get(self, request: Request, reference: str) -> Response:
        transfers = visible_transfers(request.user).select_related("parent")
        return self.one(transfers, reference=reference)


class TransferReverseView(MovingView[Transfer]):
    serializer_class = serializers.TransferSerializer

    @schema.operation(
        "transfers_reverse",
        "transfers",
        "Reverse a transfer",
        "Move all that is left of a transfer (or ``amount`` of it) back from its "
        "destination to its source. Needs ``accounts.move_money``.",
        {201: serializers.TransferSerializer},
        schema.moving("not_found", "invalid_reversal"),
        parameters=[TRANSFER_REFERENCE, schema.IDEMPOTENCY_KEY],
        request=serializers.ReverseRequest,
        examples=[
            schema.request_example(
                "Refund part",
                {
                    "amount": "2.50",
                    "currency": "GBP",
                    "description": "Damaged item",
                    "metadata": {"return": "RMA-77"},
                },
            )
        ],
    )
    def post(self, request: Request, reference: str) -> Response:
        original = get_object_or_404(visible_transfers(request.user), reference=reference)
        data, passed = self.arguments(serializers.ReverseRequest, *DETAILS)
        return self.transfer_created(facade.reverse(original, amount=data["money"], **passed))
