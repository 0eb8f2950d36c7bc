"""Repaying a debt: move money into an account below zero, never more than it owes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework.request import Request
from rest_framework.response import Response

from ... import amounts, facade
from .. import schema, serializers
from .base import DETAILS, MovingView, movement, reread


class RepaymentCreateView(MovingView[Any]):
    serializer_class = serializers.RepaymentSerializer

    @schema.operation(
        "repayments_create",
        "repayments",
        "Repay a debt",
        "Move ``amount`` from ``source`` into ``destination``, or less: never more than "
        "the destination owes (minus its balance when below zero, read under its lock). "
        "201 with the transfer when money moved; 200 with ``transfer: null`` and a zero "
        "``amount`` when there was no debt. The source is debited as by a transfer "
        "(funds, credit limit, spending limits). Send an ``Idempotency-Key``: a retry "
        "answers with the same outcome, no debt included, whatever the debt is by then. "
        "Needs ``accounts.move_money``.",
        {
            200: OpenApiResponse(
                serializers.RepaymentSerializer,
                "There was no debt: nothing moved.",
                [
                    OpenApiExample(
                        "No debt",
                        response_only=True,
                        status_codes=["200"],
                        value={
                            "transfer": None,
                            "amount": {"amount": "0.00", "currency": "GBP"},
                            "debt": {"amount": "0.00", "currency": "GBP"},
                        },
                    )
                ],
            ),
            201: OpenApiResponse(
                serializers.RepaymentSerializer, "Money moved: the transfer that repaid."
            ),
        },
        schema.moving(),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.RepayRequest,
        examples=[
            schema.request_example(
                "A reimbursement into a card's debt",
                {
                    "source": 18,
                    "destination": 16,
                    "amount": "20.00",
                    "currency": "GBP",
                    "description": "Reimbursement: a returned train ticket",
                    "metadata": {"claim": "EXP-4411"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data, passed = self.arguments(serializers.RepayRequest, *DETAILS)
        transfer = facade.repay(*movement(data), **passed)
        if transfer is None:
            zero = amounts.money(Decimal(0), data["destination"].currency)
            nothing = {"transfer": None, "amount": zero, "debt": zero}
            return Response(serializers.RepaymentSerializer(nothing).data)
        transfer = reread(transfer, "parent", "repayment")
        repaid = {"transfer": transfer, "amount": transfer.amount, "debt": transfer.repayment.debt}
        answer = serializers.RepaymentSerializer(repaid)
        return self.created(answer.data, "transfer-detail", transfer.reference)
