"""A gift card's balance by its code, without logging in."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from ...lookup import lookup_code
from ...views import not_found_error
from .. import schema, serializers
from ..errors import CardNotFound, InvalidCode
from .base import LedgerView, validated


class BalanceCheckView(LedgerView[Any]):
    """A gift card's balance from its code, without logging in; throttled like the HTML page."""

    serializer_class = serializers.CardBalanceSerializer
    # No login; and so no session either, whose CSRF check would refuse a
    # logged-in browser's request made without the token.
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes: list[type[BasePermission]] = [AllowAny]

    @schema.operation(
        "balance_check",
        "gift cards",
        "A gift card's balance by its code",
        "No login. The code is sent in the body (never in the URL, so it stays out of "
        "logs), in any case, with or without spaces and dashes. Every code that finds "
        "no card counts against the client's address, with the limits and cache of "
        "the balance check page (``ACCOUNTS_CODE_LOOKUP_*``); a blocked address gets "
        "429 ``lookup_blocked`` with ``Retry-After``.",
        {200: serializers.CardBalanceSerializer},
        (*schema.BODY, "invalid_code", "card_not_found", "lookup_blocked"),
        auth=[],
        request=serializers.BalanceCheckRequest,
        examples=[schema.request_example("A code as typed", {"code": "7kq2 m9xd-ht4r-wb3n"})],
    )
    def post(self, request: Request) -> Response:
        code = validated(serializers.BalanceCheckRequest, request, request.data)["code"]
        django_request: HttpRequest = request._request
        card = lookup_code(django_request, code)
        if card is None:
            error = not_found_error(code)
            raise InvalidCode() if error.code == "invalid_code" else CardNotFound()
        return Response(
            serializers.CardBalanceSerializer(serializers.card_balance(card, code)).data
        )
