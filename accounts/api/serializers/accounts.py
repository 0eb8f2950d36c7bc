"""An account as the API answers it, with its spending limits, and a page of accounts."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnList

from ... import limits
from ...models import Account, AccountType, SpendingLimit
from ..errors import money_data
from ..fields import MoneyField, MoneySerializer
from .common import (
    TextChoicesField,
    listed,
    read_only_metadata,
    related,
)


class AccountStatusField(TextChoicesField, component_name="AccountStatus"):
    """An account's status: open, frozen or closed."""

    text_choices = Account.Status


class PeriodField(TextChoicesField, component_name="Period"):
    """A spending limit's period: day, week or month."""

    text_choices = SpendingLimit.Period


class AccountTypeSerializer(serializers.ModelSerializer[AccountType]):
    class Meta:
        model = AccountType
        fields = ["code", "name"]


class SpendingSerializer(serializers.Serializer[limits.Spending]):
    """One period's spending limit: the limit, what was spent in the period, what is left."""

    period = PeriodField(read_only=True)
    limit = MoneyField(help_text=_("The account's own limit, or its type's."))
    used = MoneyField(help_text=_("Spent in the period so far (holds count when placed)."))
    available = MoneyField(help_text=_("What the limit still allows now; never below zero."))
    starts = serializers.DateField(
        read_only=True, help_text=_("The period's first day, in ACCOUNTS_TIME_ZONE.")
    )
    resets_at = serializers.DateTimeField(
        read_only=True, help_text=_("When the next period starts and the limit applies afresh.")
    )


def spending_of(accounts: list[Account]) -> dict[int, list[limits.Spending]]:
    """Each account's spending limits now, by id: two queries, whatever the number of accounts.

    The limits of all the accounts in one query and the database's time in
    another (only when some account has a limit), then each account's stored
    usage, already on its row: ``Account.spending()`` for a page of accounts.
    A display: every debit judges the limits again under its lock.
    """
    if not accounts:
        return {}
    using = accounts[0]._state.db or "default"
    found = SpendingLimit.objects.using(using).effective_for_many(accounts)
    if not found:
        return {}
    now = limits.database_now(using)
    return {
        account.pk: limits.spending(account, found[account.pk], now)
        for account in accounts
        if account.pk in found
    }


class AccountSerializer(serializers.ModelSerializer[Account]):
    """An account with what it holds and what it can spend now.

    Give the spending limits of the accounts serialized in the context
    (``{"spending": spending_of(accounts)}``), so that a page of accounts
    costs the same few queries whatever its length.
    """

    type = AccountTypeSerializer(source="account_type", allow_null=True, read_only=True)
    balance = MoneyField()
    held = MoneyField(help_text=_("Reserved by active holds; part of the balance."))
    available = MoneyField(
        source="available_amount",
        allow_null=True,
        help_text=_("balance − held + credit limit; null for an account without a limit."),
    )
    credit_limit = MoneyField(
        allow_null=True, help_text=_("How far the balance may go below zero; null: no limit.")
    )
    active = serializers.SerializerMethodField(
        help_text=_("Open and inside its start and end dates: it can pay and be paid now.")
    )
    status = AccountStatusField(read_only=True)
    primary_user = related("username", _("The primary user's username (null: none)."))
    spending_available = serializers.SerializerMethodField(
        help_text=_(
            "The least any spending limit still allows now; null: no spending limit. "
            "What can be spent is the least of this and available."
        )
    )
    spending_limits = serializers.SerializerMethodField(
        help_text=_("Each period's spending limit (day, week, month); empty: none.")
    )
    metadata = read_only_metadata(_("The account's metadata: a JSON object, {} when none."))

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "code",
            "description",
            "type",
            "currency",
            "status",
            "active",
            "balance",
            "held",
            "available",
            "credit_limit",
            "spending_available",
            "spending_limits",
            "start_date",
            "end_date",
            "created",
            "primary_user",
            "metadata",
        ]
        read_only_fields = fields

    def get_active(self, account: Account) -> bool:
        return account.is_active()

    def _spending(self, account: Account) -> list[limits.Spending]:
        spending: dict[int, list[limits.Spending]] | None = self.context.get("spending")
        if spending is None:  # one account on its own: its own two queries
            spending = spending_of([account])
        return list(spending.get(account.pk, []))

    @extend_schema_field(MoneySerializer(allow_null=True))
    def get_spending_available(self, account: Account) -> dict[str, str] | None:
        entries = self._spending(account)
        if not entries:
            return None
        return money_data(min((e.available for e in entries), key=lambda m: m.amount))

    @extend_schema_field(SpendingSerializer(many=True))
    def get_spending_limits(self, account: Account) -> ReturnList[Any]:
        return listed(SpendingSerializer, self._spending(account))


class AccountPageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of accounts, in order of id."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AccountSerializer(many=True)
