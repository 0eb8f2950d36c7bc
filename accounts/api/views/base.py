"""
What every view of the API shares: JSON in and out, the API's errors and
permissions, the ``Idempotency-Key`` header, one object read for the
requesting user, and the answers of the views that move money.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from drf_spectacular.openapi import AutoSchema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from ...models import Account, Transfer
from ..errors import exception_handler
from ..permissions import MovesMoney
from ..serializers import TransferSerializer

_M = TypeVar("_M", bound=Model)

#: Longest Idempotency-Key accepted (the facade stores up to 128 characters,
#: with the user's namespace in front).
IDEMPOTENCY_KEY_LENGTH = 100

#: A request's optional fields that describe the movement, passed to the
#: facade as they are (None when left out).
DETAILS = ("merchant_reference", "description", "metadata", "effective_at")


def idempotency_key(request: Request) -> str | None:
    """The facade's key for the request's ``Idempotency-Key`` header, or None without one.

    Keys are kept per user (``api:<user id>:<key>``): two clients choosing
    the same key never meet, and a key cannot be used to learn of another
    user's transfer.
    """
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not 1 <= len(raw) <= IDEMPOTENCY_KEY_LENGTH or not all("!" <= c <= "~" for c in raw):
        raise ValidationError(
            {
                "Idempotency-Key": [
                    _("Give 1 to %(max)s visible ASCII characters (no spaces).")
                    % {"max": IDEMPOTENCY_KEY_LENGTH}
                ]
            }
        )
    return "api:%s:%s" % (request.user.pk, raw)


def validated(
    serializer_class: type[Serializer[dict[str, Any]]], request: Request, data: Any
) -> dict[str, Any]:
    """``data`` (a body or the query parameters) checked by ``serializer_class``; 400 if not."""
    serializer = serializer_class(data=data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    checked: dict[str, Any] = serializer.validated_data
    return checked


def given(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """The optional fields ``names`` of validated ``data``, None for those left out."""
    return {name: data.get(name) for name in names}


def movement(data: dict[str, Any]) -> tuple[Account, Account, Money]:
    """A checked request's source, destination and amount: the facade's first arguments."""
    return data["source"], data["destination"], data["money"]


def reread(instance: _M, *related: str) -> _M:
    """``instance`` read again from the database it was written to, with ``related`` joined."""
    manager = type(instance)._default_manager.using(instance._state.db)
    return manager.select_related(*related).get(pk=instance.pk)


class LedgerView(GenericAPIView[_M]):
    """Base of the API's views: JSON in and out, the API's errors and permissions.

    The type parameter is the model a view answers with; a view answering
    with a composite (a page, a statement) has none to give (``Any``).
    """

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    permission_classes: list[type[BasePermission]] = [IsAuthenticated]
    schema = AutoSchema()
    pagination_class = None

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler

    def one(self, queryset: QuerySet[_M], **lookup: Any) -> Response:
        """The object ``lookup`` finds in ``queryset``, as ``serializer_class`` writes it.

        ``queryset`` holds what the user may see: any other object answers 404,
        exactly like one that does not exist.
        """
        found = get_object_or_404(queryset, **lookup)
        return Response(self.get_serializer_class()(found).data)

    def arguments(
        self, serializer_class: type[Serializer[dict[str, Any]]], *names: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request's body checked, and the facade's arguments every write takes.

        Those are the user, the ``Idempotency-Key`` (read first: a bad key is
        refused before the body) and the body's optional fields ``names``.
        """
        key = idempotency_key(self.request)
        data = validated(serializer_class, self.request, self.request.data)
        return data, {"user": self.request.user, "idempotency_key": key, **given(data, *names)}

    def created(self, data: Any, view_name: str, reference: str) -> Response:
        """201 with ``data``, and the URL of what was made (``view_name``) as its Location."""
        location = reverse("accounts_api:%s" % view_name, args=[reference])
        return Response(
            data,
            status=status.HTTP_201_CREATED,
            headers={"Location": self.request.build_absolute_uri(location)},
        )

    def transfer_created(self, transfer: Transfer) -> Response:
        """201 with the transfer a write made, read again with the transfer it reverses."""
        transfer = reread(transfer, "parent")
        data = TransferSerializer(transfer).data
        return self.created(data, "transfer-detail", transfer.reference)


class MovingView(LedgerView[_M]):
    """Base of the views only users with ``accounts.move_money`` may use (a shop's backend)."""

    permission_classes = [IsAuthenticated, MovesMoney]
