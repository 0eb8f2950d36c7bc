"""
The REST API's views. Every write goes through ``accounts.facade``.

Each view reads the objects it works on from the querysets in
``accounts.api.permissions``, built for the requesting user, so an object the
user may not see answers 404, exactly like one that does not exist. Request
bodies are checked completely by the serializers in
``accounts.api.serializers`` before the facade is called; the facade decides
the rest (funds, status, dates, currency, what is left to reverse) under its
row locks, and its refusals become JSON errors (``accounts.api.errors``).

Authentication is whatever the project configures for DRF
(``DEFAULT_AUTHENTICATION_CLASSES``: session with CSRF, token, ...); the
permission rules are the API's own and do not depend on
``DEFAULT_PERMISSION_CLASSES``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import amounts, facade
from ..codes import normalize_code
from ..exceptions import AccountException
from ..lookup import lookup_code
from ..models import Account, Batch, Decline, Hold, Transfer
from ..views import not_found_error
from . import schema, serializers
from .errors import CardNotFound, InvalidCode, exception_handler
from .pagination import KeysetPage
from .permissions import (
    MovesMoney,
    visible_accounts,
    visible_batches,
    visible_holds,
    visible_transfers,
)

#: Longest Idempotency-Key accepted (the facade stores up to 128 characters,
#: with the user's namespace in front).
IDEMPOTENCY_KEY_LENGTH = 100


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


def validated(serializer_class: type, request: Request, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class LedgerView(GenericAPIView):
    """Base of the API's views: JSON in and out, the API's errors and permissions."""

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    permission_classes = [IsAuthenticated]
    schema = AutoSchema()
    pagination_class = None

    def get_exception_handler(self) -> Any:
        return exception_handler

    def created(self, data: Any, location: str) -> Response:
        return Response(
            data,
            status=status.HTTP_201_CREATED,
            headers={"Location": self.request.build_absolute_uri(location)},
        )


def transfer_url(transfer: Transfer) -> str:
    return reverse("accounts_api:transfer-detail", args=[transfer.reference])


def hold_url(hold: Hold) -> str:
    return reverse("accounts_api:hold-detail", args=[hold.reference])


def batch_url(batch: Batch) -> str:
    return reverse("accounts_api:batch-detail", args=[batch.reference])


ACCOUNT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The account's id.")
TRANSFER_REFERENCE = OpenApiParameter(
    "reference", str, OpenApiParameter.PATH, description="The transfer's reference."
)
HOLD_REFERENCE = OpenApiParameter(
    "reference", str, OpenApiParameter.PATH, description="The hold's reference."
)
BATCH_REFERENCE = OpenApiParameter(
    "reference", str, OpenApiParameter.PATH, description="The batch's reference."
)
CURSOR = OpenApiParameter("cursor", str, description="From a previous page's next/previous.")
PAGE_SIZE = OpenApiParameter("page_size", int, description="1 to 200; default 50.")


# Accounts ----------------------------------------------------------------------


class AccountListView(LedgerView):
    serializer_class = serializers.AccountSerializer

    @extend_schema(
        operation_id="accounts_list",
        tags=["accounts"],
        summary="List accounts",
        description=(
            "The accounts the user may use, as primary or secondary user; every account "
            "for users with ``accounts.view_account``. Filters narrow that list. Pages of "
            "50 (``page_size`` up to 200), in order of id; follow ``next``. Each account "
            "shows its spending limits (period, limit, used, available) and "
            "``spending_available``, the least any of them allows now (null: none); a "
            "page costs the same queries whatever its length."
        ),
        parameters=[
            serializers.AccountFilter,
            CURSOR,
            PAGE_SIZE,
        ],
        responses={
            200: serializers.AccountPageSerializer,
            **schema.error_responses("invalid", *schema.AUTH),
        },
    )
    def get(self, request: Request) -> Response:
        filters = validated(serializers.AccountFilter, request, request.query_params.dict())
        accounts = visible_accounts(request.user).select_related("account_type", "primary_user")
        if "type" in filters:
            accounts = accounts.of_type(filters["type"])
        if "status" in filters:
            accounts = accounts.filter(status=filters["status"])
        if "currency" in filters:
            accounts = accounts.filter(currency=filters["currency"])
        if "user" in filters:
            secondary = Account.objects.filter(secondary_users__username=filters["user"])
            accounts = accounts.filter(
                Q(primary_user__username=filters["user"]) | Q(pk__in=secondary.values("pk"))
            )
        if "code" in filters:
            accounts = accounts.filter(code=normalize_code(filters["code"]))
        page = KeysetPage(accounts, request, ("pk",))
        # The page's spending limits in two queries, whatever its length.
        context = {"spending": serializers.spending_of(page.rows)}
        return Response(
            {
                "next": page.next_link,
                "previous": page.previous_link,
                "results": serializers.AccountSerializer(
                    page.rows, many=True, context=context
                ).data,
            }
        )


class AccountDetailView(LedgerView):
    serializer_class = serializers.AccountSerializer

    @extend_schema(
        operation_id="accounts_retrieve",
        tags=["accounts"],
        summary="An account",
        description=(
            "An account the user may use; any account for users with "
            "``accounts.view_account``. Others answer 404, like an id that does not exist."
        ),
        parameters=[ACCOUNT_ID],
        responses={
            200: serializers.AccountSerializer,
            **schema.error_responses("not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(
            visible_accounts(request.user).select_related("account_type", "primary_user"), pk=pk
        )
        return Response(serializers.AccountSerializer(account).data)


class StatementView(LedgerView):
    serializer_class = serializers.StatementSerializer

    @extend_schema(
        operation_id="accounts_statement",
        tags=["accounts"],
        summary="An account's statement",
        description=(
            "The account's lines (the legs of its transfers), oldest or newest first, each "
            "with the balance after it, and the balances at the start and end of the "
            "period. Dates mean whole days in the site's time zone. Pages of 50 "
            "(``page_size`` up to 200); every page costs the same however long the history."
        ),
        parameters=[
            ACCOUNT_ID,
            OpenApiParameter(
                "start", str, description="A date (2026-03-01) or an aware date and time."
            ),
            OpenApiParameter("end", str, description="A date or an aware date and time."),
            OpenApiParameter(
                "order",
                str,
                enum=["oldest", "newest"],
                description="oldest (the default) or newest first, as a wallet app shows it.",
            ),
            OpenApiParameter(
                "date_field",
                str,
                enum=["created", "effective_at"],
                description=(
                    "What start and end apply to and the lines are sorted by: created (when "
                    "posted; the default) or effective_at (when the transfer happened in the "
                    "world). Balances always follow the posting order."
                ),
                examples=[OpenApiExample("By effective date", value="effective_at")],
            ),
            OpenApiParameter("cursor", str, description="From a previous page's next/previous."),
            OpenApiParameter("page_size", int, description="1 to 200; default 50."),
        ],
        responses={
            200: serializers.StatementSerializer,
            **schema.error_responses("invalid", "not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(visible_accounts(request.user), pk=pk)
        period = validated(serializers.StatementFilter, request, request.query_params.dict())
        date_field = period.get("date_field", "created")
        statement = account.statement(
            period.get("start"), period.get("end"), date_field=date_field
        )
        newest_first = period.get("order") == "newest"
        # The statement's own order: by posting time, or by the transfer's
        # effective date; the leg's id breaks ties either way.
        keys = ("created", "pk") if date_field == "created" else ("transfer__effective_at", "pk")
        page = KeysetPage(statement.transactions, request, keys, descending=newest_first)
        data = {
            "account": account.pk,
            "currency": account.currency,
            "start": statement.start,
            "end": statement.end,
            "date_field": date_field,
            "opening_balance": statement.opening_balance,
            "closing_balance": statement.closing_balance,
            "next": page.next_link,
            "previous": page.previous_link,
            "results": page.rows,
        }
        return Response(serializers.StatementSerializer(data).data)


class DeclineListView(LedgerView):
    serializer_class = serializers.DeclinePageSerializer

    @extend_schema(
        operation_id="accounts_declines",
        tags=["accounts"],
        summary="An account's declined payments",
        description=(
            "The payments from the account the ledger refused by its rules (not enough "
            "money, a spending limit, a frozen or expired account, an unusable "
            "authorisation), newest first, each with the operation, the amount asked for, "
            "the reason's code and a few words of it, and its figures. Kept when "
            "``ACCOUNTS_RECORD_DECLINES`` is on. The same accounts as the statement: those "
            "the user may use; any for users with ``accounts.view_account``. Pages of 50 "
            "(``page_size`` up to 200)."
        ),
        parameters=[ACCOUNT_ID, CURSOR, PAGE_SIZE],
        responses={
            200: serializers.DeclinePageSerializer,
            **schema.error_responses("invalid", "not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(visible_accounts(request.user), pk=pk)
        validated(serializers.PageFilter, request, request.query_params.dict())
        declines = Decline.objects.filter(source=account.pk).select_related("hold")
        page = KeysetPage(declines, request, ("created", "pk"), descending=True)
        data = {
            "account": account.pk,
            "next": page.next_link,
            "previous": page.previous_link,
            "results": page.rows,
        }
        return Response(serializers.DeclinePageSerializer(data).data)


# Transfers ----------------------------------------------------------------------


class TransferCreateView(LedgerView):
    serializer_class = serializers.TransferSerializer

    @extend_schema(
        operation_id="transfers_create",
        tags=["transfers"],
        summary="Move money",
        description=(
            "Debit ``source`` and credit ``destination``. A customer may debit only an "
            "account they may use, and pay only into accounts the application allows "
            "(``ACCOUNTS_API_PAYMENT_POLICY``); users with ``accounts.move_money`` may move "
            "money between any accounts. Send an ``Idempotency-Key``: a retry of the same "
            "request answers with the same transfer and moves nothing."
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.TransferRequest,
        responses={
            201: serializers.TransferSerializer,
            **schema.error_responses(
                *schema.BODY, *schema.AUTH, "permission_denied", *schema.MOVE
            ),
        },
        examples=[
            OpenApiExample(
                "Pay from a wallet",
                request_only=True,
                value={
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
        key = idempotency_key(request)
        data = validated(serializers.TransferRequest, request, request.data)
        transfer = facade.transfer(
            data["source"],
            data["destination"],
            data["money"],
            user=request.user,
            merchant_reference=data.get("merchant_reference"),
            description=data.get("description"),
            idempotency_key=key,
            allow_partial=data["allow_partial"],
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        transfer = (
            Transfer.objects.using(transfer._state.db).select_related("parent").get(pk=transfer.pk)
        )
        return self.created(serializers.TransferSerializer(transfer).data, transfer_url(transfer))


class TransferDetailView(LedgerView):
    serializer_class = serializers.TransferSerializer

    @extend_schema(
        operation_id="transfers_retrieve",
        tags=["transfers"],
        summary="A transfer",
        description=(
            "A transfer on an account the user may use; any transfer for users with "
            "``accounts.view_transfer`` or ``accounts.move_money``."
        ),
        parameters=[TRANSFER_REFERENCE],
        responses={
            200: serializers.TransferSerializer,
            **schema.error_responses("not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, reference: str) -> Response:
        transfer = get_object_or_404(
            visible_transfers(request.user).select_related("parent"), reference=reference
        )
        return Response(serializers.TransferSerializer(transfer).data)


class TransferReverseView(LedgerView):
    serializer_class = serializers.TransferSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="transfers_reverse",
        tags=["transfers"],
        summary="Reverse a transfer",
        description=(
            "Move all that is left of a transfer (or ``amount`` of it) back from its "
            "destination to its source. Needs ``accounts.move_money``."
        ),
        parameters=[TRANSFER_REFERENCE, schema.IDEMPOTENCY_KEY],
        request=serializers.ReverseRequest,
        responses={
            201: serializers.TransferSerializer,
            **schema.error_responses(
                *schema.BODY,
                *schema.AUTH,
                "permission_denied",
                "not_found",
                "invalid_reversal",
                *schema.MOVE,
            ),
        },
        examples=[
            OpenApiExample(
                "Refund part",
                request_only=True,
                value={
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
        key = idempotency_key(request)
        data = validated(serializers.ReverseRequest, request, request.data)
        reversal = facade.reverse(
            original,
            amount=data["money"],
            user=request.user,
            merchant_reference=data.get("merchant_reference"),
            description=data.get("description"),
            idempotency_key=key,
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        reversal = (
            Transfer.objects.using(reversal._state.db).select_related("parent").get(pk=reversal.pk)
        )
        return self.created(serializers.TransferSerializer(reversal).data, transfer_url(reversal))


# Holds ----------------------------------------------------------------------


class HoldCreateView(LedgerView):
    serializer_class = serializers.HoldSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="holds_create",
        tags=["holds"],
        summary="Reserve money",
        description=(
            "Reserve ``amount`` on ``source`` for a later capture to ``destination``: the "
            "balance stays, what is available drops at once. Needs ``accounts.move_money`` "
            "(a shop's payment backend)."
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.HoldRequest,
        responses={
            201: serializers.HoldSerializer,
            **schema.error_responses(
                *schema.BODY, *schema.AUTH, "permission_denied", *schema.MOVE
            ),
        },
        examples=[
            OpenApiExample(
                "Click and collect",
                request_only=True,
                value={
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
        key = idempotency_key(request)
        data = validated(serializers.HoldRequest, request, request.data)
        hold = facade.hold(
            data["source"],
            data["destination"],
            data["money"],
            expires_at=data.get("expires_at"),
            merchant_reference=data.get("merchant_reference"),
            description=data.get("description"),
            user=request.user,
            idempotency_key=key,
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        hold = Hold.objects.using(hold._state.db).select_related("capture").get(pk=hold.pk)
        return self.created(serializers.HoldSerializer(hold).data, hold_url(hold))


class HoldDetailView(LedgerView):
    serializer_class = serializers.HoldSerializer

    @extend_schema(
        operation_id="holds_retrieve",
        tags=["holds"],
        summary="A hold",
        description=(
            "A hold on an account the user may use; any hold for users with "
            "``accounts.view_hold`` or ``accounts.move_money``."
        ),
        parameters=[HOLD_REFERENCE],
        responses={
            200: serializers.HoldSerializer,
            **schema.error_responses("not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, reference: str) -> Response:
        hold = get_object_or_404(
            visible_holds(request.user).select_related("capture"), reference=reference
        )
        return Response(serializers.HoldSerializer(hold).data)


class HoldCaptureView(LedgerView):
    serializer_class = serializers.TransferSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="holds_capture",
        tags=["holds"],
        summary="Capture a hold",
        description=(
            "Turn the hold into a transfer of ``amount`` (default: all of it); the rest is "
            "released at once. Answers with the transfer. Needs ``accounts.move_money``."
        ),
        parameters=[HOLD_REFERENCE, schema.IDEMPOTENCY_KEY],
        request=serializers.CaptureRequest,
        responses={
            201: serializers.TransferSerializer,
            **schema.error_responses(
                *schema.BODY,
                *schema.AUTH,
                "permission_denied",
                "not_found",
                "hold_resolved",
                "hold_expired",
                "capture_exceeds_hold",
                *schema.MOVE,
            ),
        },
        examples=[
            OpenApiExample(
                "Capture less",
                request_only=True,
                value={
                    "amount": "5.00",
                    "currency": "GBP",
                    "effective_at": "2026-03-02T09:30:00+00:00",
                },
            )
        ],
    )
    def post(self, request: Request, reference: str) -> Response:
        hold = get_object_or_404(visible_holds(request.user), reference=reference)
        key = idempotency_key(request)
        data = validated(serializers.CaptureRequest, request, request.data)
        transfer = facade.capture(
            hold,
            data["money"],
            user=request.user,
            description=data.get("description"),
            idempotency_key=key,
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        transfer = (
            Transfer.objects.using(transfer._state.db).select_related("parent").get(pk=transfer.pk)
        )
        return self.created(serializers.TransferSerializer(transfer).data, transfer_url(transfer))


class HoldReleaseView(LedgerView):
    serializer_class = serializers.HoldSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="holds_release",
        tags=["holds"],
        summary="Release a hold",
        description=(
            "Free what the hold reserves, moving nothing. A hold resolves once: releasing "
            "it again answers 409 ``hold_resolved`` with its status in the facts, so a "
            "retry after a lost answer can tell that it is done. Needs "
            "``accounts.move_money``."
        ),
        parameters=[HOLD_REFERENCE],
        request=serializers.ReleaseRequest,
        responses={
            200: serializers.HoldSerializer,
            **schema.error_responses(
                "invalid",
                "parse_error",
                *schema.AUTH,
                "permission_denied",
                "not_found",
                "hold_resolved",
            ),
        },
    )
    def post(self, request: Request, reference: str) -> Response:
        hold = get_object_or_404(visible_holds(request.user), reference=reference)
        validated(serializers.ReleaseRequest, request, request.data)
        facade.release(hold, user=request.user)
        hold = Hold.objects.using(hold._state.db).select_related("capture").get(pk=hold.pk)
        return Response(serializers.HoldSerializer(hold).data)


# Batches ----------------------------------------------------------------------


def batch_data(batch: Batch, refusals: dict[int, AccountException] | None = None) -> Any:
    """The batch as JSON, with its transfers (a fixed number of queries, whatever its size)."""
    return serializers.BatchSerializer(batch, context={"refusals": refusals or {}}).data


class BatchCreateView(LedgerView):
    serializer_class = serializers.BatchSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="batches_create",
        tags=["batches"],
        summary="Post many transfers as one batch",
        description=(
            "Every account of the batch is locked at once; each transfer is judged in "
            "order, by the rules of a single transfer, on the balances the earlier ones "
            "leave. Linked (``atomic``, the default): all or nothing; the first refusal "
            "answers as a single transfer's would, with the request's position in "
            "``facts.index``, and nothing is written. Independent (``atomic: false``): each "
            "request is posted or refused on its own; ``items`` tells which, with the error "
            "of each refused one. Up to ``ACCOUNTS_BATCH_MAX_SIZE`` transfers. Send an "
            "``Idempotency-Key``: a retry of the same request answers with the same batch "
            "(its refused requests without their errors: refusals are not kept). Needs "
            "``accounts.move_money``."
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.BatchRequest,
        responses={
            201: serializers.BatchSerializer,
            **schema.error_responses(
                *schema.BODY, *schema.AUTH, "permission_denied", "invalid_argument", *schema.MOVE
            ),
        },
        examples=[
            OpenApiExample(
                "A payment and its fee",
                request_only=True,
                value={
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
        key = idempotency_key(request)
        data = validated(serializers.BatchRequest, request, request.data)
        batch = facade.transfer_many(
            [
                facade.TransferRequest(
                    source=item["source"],
                    destination=item["destination"],
                    amount=item["money"],
                    merchant_reference=item.get("merchant_reference"),
                    description=item.get("description"),
                    allow_partial=item["allow_partial"],
                    metadata=item.get("metadata"),
                    effective_at=item.get("effective_at"),
                )
                for item in data["transfers"]
            ],
            user=request.user,
            description=data.get("description"),
            idempotency_key=key,
            atomic=data["atomic"],
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        results = getattr(batch, "results", [])
        refusals = {
            index: result
            for index, result in enumerate(results)
            if isinstance(result, AccountException)
        }
        return self.created(batch_data(batch, refusals), batch_url(batch))


class BatchDetailView(LedgerView):
    serializer_class = serializers.BatchSerializer

    @extend_schema(
        operation_id="batches_retrieve",
        tags=["batches"],
        summary="A batch",
        description=(
            "A batch with its requests and its transfers. For users with "
            "``accounts.view_batch``, ``accounts.view_transfer`` or ``accounts.move_money``; "
            "a batch can carry many customers' transfers, so customers read the transfers "
            "on their own accounts instead, and a batch answers them 404."
        ),
        parameters=[BATCH_REFERENCE],
        responses={
            200: serializers.BatchSerializer,
            **schema.error_responses("not_found", *schema.AUTH),
        },
    )
    def get(self, request: Request, reference: str) -> Response:
        batch = get_object_or_404(visible_batches(request.user), reference=reference)
        return Response(batch_data(batch))


# Repaying debts ----------------------------------------------------------------------


class RepaymentCreateView(LedgerView):
    serializer_class = serializers.RepaymentSerializer
    permission_classes = [IsAuthenticated, MovesMoney]

    @extend_schema(
        operation_id="repayments_create",
        tags=["repayments"],
        summary="Repay a debt",
        description=(
            "Move ``amount`` from ``source`` into ``destination``, or less: never more than "
            "the destination owes (minus its balance when below zero, read under its lock). "
            "201 with the transfer when money moved; 200 with ``transfer: null`` and a zero "
            "``amount`` when there was no debt. The source is debited as by a transfer "
            "(funds, credit limit, spending limits). Send an ``Idempotency-Key``: a retry "
            "answers with the same outcome, no debt included, whatever the debt is by then. "
            "Needs ``accounts.move_money``."
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        request=serializers.RepayRequest,
        responses={
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
            **schema.error_responses(
                *schema.BODY, *schema.AUTH, "permission_denied", *schema.MOVE
            ),
        },
        examples=[
            OpenApiExample(
                "A reimbursement into a card's debt",
                request_only=True,
                value={
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
        key = idempotency_key(request)
        data = validated(serializers.RepayRequest, request, request.data)
        destination = data["destination"]
        transfer = facade.repay(
            data["source"],
            destination,
            data["money"],
            user=request.user,
            merchant_reference=data.get("merchant_reference"),
            description=data.get("description"),
            idempotency_key=key,
            metadata=data.get("metadata"),
            effective_at=data.get("effective_at"),
        )
        zero = amounts.money(Decimal(0), destination.currency)
        if transfer is None:
            body = {"transfer": None, "amount": zero, "debt": zero}
            return Response(serializers.RepaymentSerializer(body).data)
        transfer = (
            Transfer.objects.using(transfer._state.db)
            .select_related("parent", "repayment")
            .get(pk=transfer.pk)
        )
        body = {"transfer": transfer, "amount": transfer.amount, "debt": transfer.repayment.debt}
        return self.created(serializers.RepaymentSerializer(body).data, transfer_url(transfer))


# Gift cards ----------------------------------------------------------------------


class BalanceCheckView(LedgerView):
    """A gift card's balance from its code, without logging in; throttled like the HTML page."""

    serializer_class = serializers.CardBalanceSerializer
    # No login; and so no session either, whose CSRF check would refuse a
    # logged-in browser's request made without the token.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="balance_check",
        tags=["gift cards"],
        summary="A gift card's balance by its code",
        description=(
            "No login. The code is sent in the body (never in the URL, so it stays out of "
            "logs), in any case, with or without spaces and dashes. Every code that finds "
            "no card counts against the client's address, with the limits and cache of "
            "the balance check page (``ACCOUNTS_CODE_LOOKUP_*``); a blocked address gets "
            "429 ``lookup_blocked`` with ``Retry-After``."
        ),
        auth=[],
        request=serializers.BalanceCheckRequest,
        responses={
            200: serializers.CardBalanceSerializer,
            **schema.error_responses(
                *schema.BODY, "invalid_code", "card_not_found", "lookup_blocked"
            ),
        },
        examples=[
            OpenApiExample(
                "A code as typed", request_only=True, value={"code": "7kq2 m9xd-ht4r-wb3n"}
            )
        ],
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
