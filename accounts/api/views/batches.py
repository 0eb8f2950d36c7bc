"""Batches: post many transfers at once, read a batch."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from ... import facade
from ...exceptions import AccountException
from ...models import Batch
from .. import schema, serializers
from ..permissions import visible_batches
from .base import DETAILS, LedgerView, MovingView, given

BATCH_REFERENCE = schema.path_parameter("reference", str, "batch's reference")


class BatchCreateView(MovingView[Batch]):
    serializer_class = serializers.BatchSerializer

    @schema.operation(
        "batches_create",
        "batches",
        "Post many transfers as one batch",
        "Every account of the batch is locked at once; each transfer is judged in "
        "order, by the rules of a single transfer, on the balances the earlier ones "
        "leave. Linked (``atomic``, the default): all or nothing; the first refusal "
        "answers as a single transfer's would, with the request's position in "
        "``facts.index``, and nothing is written. Independent (``atomic: false``): each "
        "request is posted or refused on its own; ``items`` tells which, with the error "
        "of each refused one. Up to ``ACCOUNTS_BATCH_MAX_SIZE`` transfers. Send an "
        "``Idempotency-Key``: a retry of the same request answers with the same batch "
        "(its refused requests without their errors: refusals are not kept). Needs "
        "``accounts.move_money``.",
        {201: serializers.BatchSerializer},
        schema.moving("invalid_argument"),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.BatchRequest,
        examples=[
            schema.request_example(
                "A payment and its fee",
                {
                    "transfers": [
                        {"source": 8, "destination": 2, "amount": "9.50", "currency": "GBP"},
                        {
                            "source": 8,
                            "destination": 2,
                            "amount": "0.50",
                            "currency": "GBP",
                            "description": "Card fee",
                        },
                    ],
                    "description": "Order 3001",
                    "metadata": {"order": "3001"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data, passed = self.arguments(
            serializers.BatchRequest, "description", "metadata", "effective_at"
        )
        batch = facade.transfer_many(
            [
                facade.TransferRequest(
                    source=item["source"],
                    destination=item["destination"],
                    amount=item["money"],
                    allow_partial=item["allow_partial"],
                    **given(item, *DETAILS),
                )
                for item in data["transfers"]
            ],
            atomic=data["atomic"],
            **passed,
        )
        # The refusals of an independent batch's requests, by position: they
        # are not kept, so only this answer shows them.
        results = getattr(batch, "results", [])
        refusals = {
            index: result
            for index, result in enumerate(results)
            if isinstance(result, AccountException)
        }
        answer = serializers.BatchSerializer(batch, context={"refusals": refusals})
        return self.created(answer.data, "batch-detail", batch.reference)


class BatchDetailView(LedgerView[Batch]):
    serializer_class = serializers.BatchSerializer

    @schema.operation(
        "batches_retrieve",
        "batches",
        "A batch",
        "A batch with its requests and its transfers. For users with "
        "``accounts.view_batch``, ``accounts.view_transfer`` or ``accounts.move_money``; "
        "a batch can carry many customers' transfers, so customers read the transfers "
        "on their own accounts instead, and a batch answers them 404.",
        {200: serializers.BatchSerializer},
        schema.READ_ONE,
        parameters=[BATCH_REFERENCE],
    )
    def get(self, request: Request, reference: str) -> Response:
        return self.one(visible_batches(request.user), reference=reference)
