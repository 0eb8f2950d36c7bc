"""Holds: reserve money, read a hold, capture it, release it."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from ... import facade
from ...models import Hold, Transfer
from .. import schema, serializers
from ..permissions import visible_holds
from .base import DETAILS, LedgerView, MovingView, movement, reread, validated

HOLD_REFERENCE = schema.path_parameter("reference", str, "hold's reference")


def hold_data(hold: Hold) -> dict[str, Any]:
    """The hold as a write left it, read again with the transfer that captured it."""
    data: dict[str, Any] = serializers.HoldSerializer(reread(hold, "capture")).data
    return data


class HoldCreateView(MovingView[Hold]):
    serializer_class = serializers.HoldSerializer

    @schema.operation(
        "holds_create",
        "holds",
        "Reserve money",
        "Reserve ``amount`` on ``source`` for a later capture to ``destination``: the "
        "balance stays, what is available drops at once. Needs ``accounts.move_money`` "
        "(a shop's payment backend).",
        {201: serializers.HoldSerializer},
        schema.moving(),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.HoldRequest,
        examples=[
            schema.request_example(
                "Click and collect",
                {
                    "source": 8,
                    "destination": 2,
                    "amount": "6.00",
                    "currency": "GBP",
                    "merchant_reference": "ORDER-2001",
                    "expires_at": "2026-03-08T12:00:00+00:00",
                    "metadata": {"store": "Leeds"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data, passed = self.arguments(serializers.HoldRequest, *DETAILS)
        hold = facade.hold(*movement(data), expires_at=data.get("expires_at"), **passed)
        return self.created(hold_data(hold), "hold-detail", hold.reference)


class HoldDetailView(LedgerView[Hold]):
    serializer_class = serializers.HoldSerializer

    @schema.operation(
        "holds_retrieve",
        "holds",
        "A hold",
        "A hold on an account the user may use; any hold for users with "
        "``accounts.view_hold`` or ``accounts.move_money``.",
        {200: serializers.HoldSerializer},
        schema.READ_ONE,
        parameters=[HOLD_REFERENCE],
    )
    def get(self, request: Request, reference: str) -> Response:
        return self.one(visible_holds(request.user).select_related("capture"), reference=reference)


class HoldCaptureView(MovingView[Transfer]):
    serializer_class = serializers.TransferSerializer

    @schema.operation(
        "holds_capture",
        "holds",
        "Capture a hold",
        "Turn the hold into a transfer of ``amount`` (default: all of it); the rest is "
        "released at once. Answers with the transfer. Needs ``accounts.move_money``.",
        {201: serializers.TransferSerializer},
        schema.moving("not_found", "hold_resolved", "hold_expired", "capture_exceeds_hold"),
        parameters=[HOLD_REFERENCE, schema.IDEMPOTENCY_KEY],
        request=serializers.CaptureRequest,
        examples=[
            schema.request_example(
                "Capture less",
                {
                    "amount": "5.00",
                    "currency": "GBP",
                    "effective_at": "2026-03-02T09:30:00+00:00",
                },
            )
        ],
    )
    def post(self, request: Request, reference: str) -> Response:
        hold = get_object_or_404(visible_holds(request.user), reference=reference)
        data, passed = self.arguments(
            serializers.CaptureRequest, "description", "metadata", "effective_at"
        )
        return self.transfer_created(facade.capture(hold, data["money"], **passed))


class HoldReleaseView(MovingView[Hold]):
    serializer_class = serializers.HoldSerializer

    @schema.operation(
        "holds_release",
        "holds",
        "Release a hold",
        "Free what the hold reserves, moving nothing. A hold resolves once: releasing "
        "it again answers 409 ``hold_resolved`` with its status in the facts, so a "
        "retry after a lost answer can tell that it is done. Needs "
        "``accounts.move_money``.",
        {200: serializers.HoldSerializer},
        (
            "invalid",
            "parse_error",
            *schema.AUTH,
            "permission_denied",
            "not_found",
            "hold_resolved",
        ),
        parameters=[HOLD_REFERENCE],
        request=serializers.ReleaseRequest,
    )
    def post(self, request: Request, reference: str) -> Response:
        hold = get_object_or_404(visible_holds(request.user), reference=reference)
        validated(serializers.ReleaseRequest, request, request.data)
        facade.release(hold, user=request.user)
        return Response(hold_data(hold))
