"""The accounts a user may see: the list, one account, its statement, its declined payments."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from ...codes import normalize_code
from ...models import Account, Decline
from .. import schema, serializers
from ..pagination import KeysetPage
from ..permissions import visible_accounts
from .base import LedgerView, validated

ACCOUNT_ID = schema.path_parameter("id", int, "account's id")
CURSOR = OpenApiParameter("cursor", str, description="From a previous page's next/previous.")
PAGE_SIZE = OpenApiParameter("page_size", int, description="1 to 200; default 50.")
#: The errors of a page of one account's history (its statement, its declines).
ACCOUNT_PAGE_ERRORS = ("invalid", "not_found", *schema.AUTH)


class AccountListView(LedgerView[Account]):
    serializer_class = serializers.AccountSerializer

    @schema.operation(
        "accounts_list",
        "accounts",
        "List accounts",
        "The accounts the user may use, as primary or secondary user; every account "
        "for users with ``accounts.view_account``. Filters narrow that list. Pages of "
        "50 (``page_size`` up to 200), in order of id; follow ``next``. Each account "
        "shows its spending limits (period, limit, used, available) and "
        "``spending_available``, the least any of them allows now (null: none); a "
        "page costs the same queries whatever its length.",
        {200: serializers.AccountPageSerializer},
        ("invalid", *schema.AUTH),
        parameters=[serializers.AccountFilter, CURSOR, PAGE_SIZE],
    )
    def get(self, request: Request) -> Response:
        filters = validated(serializers.AccountFilter, request, request.query_params.dict())
        accounts = visible_accounts(request.user).select_related("account_type", "primary_user")
        if "type" in filters:
            accounts = accounts.of_type(filters["type"])
        for name in ("status", "currency"):
            if name in filters:
                accounts = accounts.filter(**{name: filters[name]})
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
        return Response(serializers.AccountPageSerializer(page.body(), context=context).data)


class AccountDetailView(LedgerView[Account]):
    serializer_class = serializers.AccountSerializer

    @schema.operation(
        "accounts_retrieve",
        "accounts",
        "An account",
        "An account the user may use; any account for users with "
        "``accounts.view_account``. Others answer 404, like an id that does not exist.",
        {200: serializers.AccountSerializer},
        schema.READ_ONE,
        parameters=[ACCOUNT_ID],
    )
    def get(self, request: Request, pk: int) -> Response:
        accounts = visible_accounts(request.user).select_related("account_type", "primary_user")
        return self.one(accounts, pk=pk)


class StatementView(LedgerView[Any]):
    serializer_class = serializers.StatementSerializer

    @schema.operation(
        "accounts_statement",
        "accounts",
        "An account's statement",
        "The account's lines (the legs of its transfers), oldest or newest first, each "
        "with the balance after it, and the balances at the start and end of the "
        "period. Dates mean whole days in the site's time zone. Pages of 50 "
        "(``page_size`` up to 200); every page costs the same however long the history.",
        {200: serializers.StatementSerializer},
        ACCOUNT_PAGE_ERRORS,
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
            CURSOR,
            PAGE_SIZE,
        ],
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
        data = page.body(
            account=account.pk,
            currency=account.currency,
            start=statement.start,
            end=statement.end,
            date_field=date_field,
            opening_balance=statement.opening_balance,
            closing_balance=statement.closing_balance,
        )
        return Response(serializers.StatementSerializer(data).data)


class DeclineListView(LedgerView[Any]):
    serializer_class = serializers.DeclinePageSerializer

    @schema.operation(
        "accounts_declines",
        "accounts",
        "An account's declined payments",
        "The payments from the account the ledger refused by its rules (not enough "
        "money, a spending limit, a frozen or expired account, an unusable "
        "authorisation), newest first, each with the operation, the amount asked for, "
        "the reason's code and a few words of it, and its figures. Kept when "
        "``ACCOUNTS_RECORD_DECLINES`` is on. The same accounts as the statement: those "
        "the user may use; any for users with ``accounts.view_account``. Pages of 50 "
        "(``page_size`` up to 200).",
        {200: serializers.DeclinePageSerializer},
        ACCOUNT_PAGE_ERRORS,
        parameters=[ACCOUNT_ID, CURSOR, PAGE_SIZE],
    )
    def get(self, request: Request, pk: int) -> Response:
        account = get_object_or_404(visible_accounts(request.user), pk=pk)
        validated(serializers.PageFilter, request, request.query_params.dict())
        declines = Decline.objects.filter(source=account.pk).select_related("hold")
        page = KeysetPage(declines, request, ("created", "pk"), descending=True)
        return Response(serializers.DeclinePageSerializer(page.body(account=account.pk)).data)
