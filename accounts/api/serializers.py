"""
What the API reads and writes.

Output serializers turn the ledger's objects into JSON (money as decimal
strings with their currency). Request serializers check a request's body
completely before anything is locked: types, unknown fields, amounts and
their decimal places, and which accounts the user may name; the facade then
decides everything that depends on the database, under its row locks.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import amounts, limits
from ..codes import format_code, normalize_code
from ..conf import conf
from ..fields import window_bound
from ..models import (
    Account,
    AccountType,
    Batch,
    Decline,
    Hold,
    SpendingLimit,
    Transaction,
    Transfer,
)
from .errors import money_data
from .fields import (
    AccountIdField,
    AmountField,
    AwareDateTimeField,
    CurrencyField,
    MetadataField,
    MomentField,
    MoneyField,
    MoneySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    check_places,
    parse_day_or_moment,
)
from .permissions import can_move_money, debitable_accounts
from .policy import may_pay
from .schema import ErrorSerializer

# Output ----------------------------------------------------------------------


def _metadata(help_text: Any) -> MetadataField:
    return MetadataField(read_only=True, help_text=help_text)


def _notified_at(what: Any) -> MomentField:
    return MomentField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "When the notification of this %(what)s was sent (Transfer/Hold "
            "mark_notified()); null: not yet. Set once, never changed."
        )
        % {"what": what},
    )


_EFFECTIVE_AT_HELP = _(
    "When the movement happened in the world (e.g. a card payment's transaction date), as "
    "the request gave it; default: when it was posted, never later."
)


@extend_schema_field(
    {"type": "string", "enum": list(Account.Status.values)}, component_name="AccountStatus"
)
class AccountStatusField(serializers.ChoiceField):
    """An account's status: open, frozen or closed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Account.Status.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(Hold.Status.values)}, component_name="HoldStatus"
)
class HoldStatusField(serializers.ChoiceField):
    """A hold's status: active, captured, released or expired."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Hold.Status.choices, **kwargs)


class AccountTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccountType
        fields = ["code", "name"]


@extend_schema_field(
    {"type": "string", "enum": list(SpendingLimit.Period.values)}, component_name="Period"
)
class PeriodField(serializers.ChoiceField):
    """A spending limit's period: day, week or month."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=SpendingLimit.Period.choices, **kwargs)


class SpendingSerializer(serializers.Serializer):
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


class AccountSerializer(serializers.ModelSerializer):
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
    primary_user: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text=_("The primary user's username (null: none)."),
    )
    spending_available = serializers.SerializerMethodField(
        help_text=_(
            "The least any spending limit still allows now; null: no spending limit. "
            "What can be spent is the least of this and available."
        )
    )
    spending_limits = serializers.SerializerMethodField(
        help_text=_("Each period's spending limit (day, week, month); empty: none.")
    )
    metadata = _metadata(_("The account's metadata: a JSON object, {} when none."))

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
        spending = self.context.get("spending")
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
    def get_spending_limits(self, account: Account) -> Any:
        return SpendingSerializer(self._spending(account), many=True).data


class TransferSerializer(serializers.ModelSerializer):
    """A transfer: what moved, from where to where, and what of it was reversed."""

    # The "type: ignore"s on fields named source: DRF's stubs type Field.source
    # (the attribute path) on every field, which a field of that name shadows.

    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True)
    amount = MoneyField()
    parent: Any = serializers.SlugRelatedField(
        slug_field="reference",
        read_only=True,
        allow_null=True,
        help_text=_("The transfer this one reverses (null: not a reversal)."),
    )
    reversed_amount = serializers.SerializerMethodField(
        help_text=_("How much of this transfer was reversed so far.")
    )
    reversible_amount = serializers.SerializerMethodField(
        help_text=_("What can still be reversed (zero for a reversal).")
    )
    effective_at = MomentField(read_only=True, help_text=_EFFECTIVE_AT_HELP)
    metadata = _metadata(
        _(
            "As the request gave it ({} when none); a reversal's or a capture's "
            "default: the original's."
        )
    )
    notified_at = _notified_at(_("transfer"))

    class Meta:
        model = Transfer
        fields = [
            "reference",
            "source",
            "destination",
            "amount",
            "parent",
            "merchant_reference",
            "description",
            "created",
            "effective_at",
            "reversed_amount",
            "reversible_amount",
            "metadata",
            "notified_at",
        ]
        read_only_fields = fields

    def _reversed(self, transfer: Transfer) -> Any:
        # Many transfers: what reversed_totals() read for all of them at once.
        known = self.context.get("reversed")
        if known is not None:
            return amounts.money(known.get(transfer.pk, Decimal(0)), transfer.currency)
        # One query for both amounts.
        cache = self.__dict__.setdefault("_reversed_cache", {})
        if transfer.pk not in cache:
            cache[transfer.pk] = transfer.reversed_amount()
        return cache[transfer.pk]

    @extend_schema_field(MoneySerializer)
    def get_reversed_amount(self, transfer: Transfer) -> dict[str, str] | None:
        return money_data(self._reversed(transfer))

    @extend_schema_field(MoneySerializer)
    def get_reversible_amount(self, transfer: Transfer) -> dict[str, str] | None:
        if transfer.is_reversal:
            return money_data(amounts.money(Decimal(0), transfer.currency))
        return money_data(transfer.amount - self._reversed(transfer))


def reversed_totals(transfers: list[Transfer]) -> dict[int, Decimal]:
    """What was reversed of each transfer, by id, in one query (summed in Python, exactly)."""
    totals: dict[int, Decimal] = {}
    if not transfers:
        return totals
    rows = Transfer.objects.filter(parent__in=[t.pk for t in transfers]).values_list(
        "parent", "amount"
    )
    for parent, amount in rows:
        totals[parent] = totals.get(parent, Decimal(0)) + amount
    return totals


class HoldSerializer(serializers.ModelSerializer):
    """Money reserved on ``source`` for a later capture to ``destination``."""

    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True)
    amount = MoneyField()
    status = HoldStatusField(read_only=True)
    capture: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference",
        read_only=True,
        allow_null=True,
        help_text=_("The transfer that captured the hold (null until captured)."),
    )
    effective_at = MomentField(read_only=True, help_text=_EFFECTIVE_AT_HELP)
    metadata = _metadata(_("As the request gave it ({} when none)."))
    notified_at = _notified_at(_("hold"))

    class Meta:
        model = Hold
        fields = [
            "reference",
            "source",
            "destination",
            "amount",
            "status",
            "expires_at",
            "merchant_reference",
            "description",
            "created",
            "resolved_at",
            "capture",
            "effective_at",
            "metadata",
            "notified_at",
        ]
        read_only_fields = fields


class StatementLineSerializer(serializers.ModelSerializer):
    """One leg on the account: signed amount (negative: money out) and the balance after it."""

    transfer: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference", read_only=True
    )
    amount = MoneyField(help_text=_("Negative when money left the account."))
    balance_after = MoneyField(help_text=_("The account's balance right after this line."))
    description = serializers.CharField(source="transfer.description", read_only=True)
    merchant_reference = serializers.CharField(
        source="transfer.merchant_reference", read_only=True, allow_null=True
    )
    is_reversal = serializers.BooleanField(source="transfer.is_reversal", read_only=True)
    effective_at = MomentField(
        source="transfer.effective_at",
        read_only=True,
        help_text=_("The transfer's effective date: when it happened in the world."),
    )
    metadata = MetadataField(
        source="transfer.metadata", read_only=True, help_text=_("The transfer's metadata.")
    )

    class Meta:
        model = Transaction
        fields = [
            "id",
            "transfer",
            "created",
            "amount",
            "balance_after",
            "description",
            "merchant_reference",
            "is_reversal",
            "effective_at",
            "metadata",
        ]
        read_only_fields = fields


class StatementSerializer(serializers.Serializer):
    """A page of an account's statement, oldest (or newest) line first."""

    account = serializers.IntegerField()
    currency = serializers.CharField()
    start = serializers.DateTimeField(
        allow_null=True, help_text=_("Start of the period (null: from the first line).")
    )
    end = serializers.DateTimeField(help_text=_("End of the period (default: now)."))
    date_field = serializers.ChoiceField(
        choices=["created", "effective_at"],
        help_text=_(
            "What start and end apply to and the lines are sorted by: created (when "
            "posted) or effective_at (when the transfer happened in the world)."
        ),
    )
    opening_balance = MoneyField(help_text=_("The balance at the start of the period."))
    closing_balance = MoneyField(help_text=_("The balance at the end of the period."))
    next = serializers.URLField(allow_null=True, help_text=_("The next (later) page, or null."))
    previous = serializers.URLField(
        allow_null=True, help_text=_("The previous (earlier) page, or null.")
    )
    results = StatementLineSerializer(many=True)


@extend_schema_field(
    {"type": "string", "enum": list(Decline.Operation.values)}, component_name="DeclineOperation"
)
class DeclineOperationField(serializers.ChoiceField):
    """What was declined: a transfer, a hold, a capture, a request of a batch, a repayment."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Decline.Operation.choices, **kwargs)


class DeclineFactsSerializer(serializers.Serializer):
    """The refusal's figures, as the ledger judged them; only those that apply are present."""

    available = MoneySerializer(required=False, help_text=_("What could be spent then."))
    credit_limit = MoneySerializer(required=False, help_text=_("The account's credit limit."))
    period = PeriodField(required=False, help_text=_("A spending limit's period."))
    limit = MoneySerializer(required=False, help_text=_("The spending limit of that period."))
    used = MoneySerializer(required=False, help_text=_("Spent in that period before."))
    end_date = serializers.DateTimeField(required=False, help_text=_("The account's end."))
    start_date = serializers.DateTimeField(required=False, help_text=_("The account's start."))


#: The facts of a decline that are amounts, in the decline's currency.
DECLINE_MONEY_FACTS = ("available", "credit_limit", "limit", "used")


class DeclineSerializer(serializers.ModelSerializer):
    """A payment the ledger refused by its rules, and why."""

    operation = DeclineOperationField(read_only=True)
    source = AccountIdField(source="source_id", read_only=True)  # type: ignore[assignment]
    destination = AccountIdField(source="destination_id", read_only=True, allow_null=True)
    hold: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference",
        read_only=True,
        allow_null=True,
        help_text=_("The hold a declined capture was of (null: not a capture)."),
    )
    amount = MoneyField(
        allow_null=True, help_text=_("The amount asked for (null: a capture of all the hold).")
    )
    reason = serializers.CharField(
        read_only=True,
        help_text=_(
            "The refusal's stable code, as the API's errors have it: insufficient_funds, "
            "spending_limit_reached, account_frozen, ..."
        ),
    )
    reason_text = serializers.CharField(
        read_only=True, help_text=_('The reason in a few words: "daily limit reached".')
    )
    facts = serializers.SerializerMethodField()
    metadata = _metadata(_("The metadata of the refused request, as it gave it."))

    class Meta:
        model = Decline
        fields = [
            "id",
            "operation",
            "source",
            "destination",
            "hold",
            "amount",
            "currency",
            "reason",
            "reason_text",
            "facts",
            "merchant_reference",
            "description",
            "created",
            "metadata",
        ]
        read_only_fields = fields

    @extend_schema_field(DeclineFactsSerializer)
    def get_facts(self, decline: Decline) -> dict[str, Any]:
        """The stored facts, their amounts with the decline's currency."""
        facts: dict[str, Any] = {}
        for name, value in (decline.facts or {}).items():
            if name in DECLINE_MONEY_FACTS:
                facts[name] = {"amount": str(value), "currency": decline.currency}
            elif name in DeclineFactsSerializer._declared_fields:
                facts[name] = value
        return facts


class DeclinePageSerializer(serializers.Serializer):
    """A page of an account's declined payments, newest first."""

    account = serializers.IntegerField()
    next = serializers.URLField(allow_null=True, help_text=_("The next (older) page, or null."))
    previous = serializers.URLField(
        allow_null=True, help_text=_("The previous (newer) page, or null.")
    )
    results = DeclineSerializer(many=True)


class RepaymentSerializer(serializers.Serializer):
    """What a repayment did: the transfer that repaid the debt, or none when there was none."""

    transfer = TransferSerializer(
        allow_null=True, help_text=_("The transfer that repaid; null: there was no debt.")
    )
    amount = MoneyField(help_text=_("What was repaid: zero when there was no debt."))
    debt = MoneyField(help_text=_("What the destination owed when the repayment was judged."))


@extend_schema_field(
    {"type": "string", "enum": ["posted", "refused", "skipped"]}, component_name="BatchItemStatus"
)
class BatchItemStatusField(serializers.CharField):
    """What became of a request of a batch."""


class BatchItemSerializer(serializers.Serializer):
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


class BatchSerializer(serializers.ModelSerializer):
    """Transfers posted together, under one set of locks and one commit."""

    reverses: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference",
        read_only=True,
        allow_null=True,
        help_text=_("The batch this one reverses (null: none)."),
    )
    atomic = serializers.BooleanField(
        read_only=True, help_text=_("Linked (all or nothing), or independent requests.")
    )
    size = serializers.IntegerField(read_only=True, help_text=_("How many transfers were asked."))
    items = serializers.SerializerMethodField(help_text=_("Each request, in order."))
    transfers = serializers.SerializerMethodField(
        help_text=_("The posted transfers, in request order.")
    )
    metadata = _metadata(_("The batch's own metadata ({} when none); each transfer has its own."))

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
        cache = self.__dict__.setdefault("_posted_cache", {})
        if batch.pk not in cache:
            cache[batch.pk] = list(batch.transfers.select_related("parent"))
        return list(cache[batch.pk])

    @extend_schema_field(BatchItemSerializer(many=True))
    def get_items(self, batch: Batch) -> list[dict[str, Any]]:
        from .errors import error_body

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
    def get_transfers(self, batch: Batch) -> Any:
        transfers = self._posted(batch)
        context = {**self.context, "reversed": reversed_totals(transfers)}
        return TransferSerializer(transfers, many=True, context=context).data


class AccountPageSerializer(serializers.Serializer):
    """A page of accounts, in order of id."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AccountSerializer(many=True)


#: What the balance check says of a card, as its HTML page does.
CARD_STATES = {
    "closed": _("This card is closed and can no longer be used."),
    "frozen": _("This card is frozen and cannot be used for now. Please contact us."),
    "expired": _("This card expired on %(end)s: its balance can no longer be spent."),
    "not_yet_active": _("This card can be used from %(start)s."),
    "ready": _("Ready to use."),
    "ready_to_spend": _("Ready to use: %(available)s to spend."),
}


class CardBalanceSerializer(serializers.Serializer):
    """A gift card's balance as the balance check shows it."""

    code = serializers.CharField(help_text=_("The code, in groups: 7KQ2-M9XD-HT4R-WB3N."))
    currency = serializers.CharField()
    balance = MoneyField()
    held = MoneyField(help_text=_("Reserved for orders in progress."))
    available = MoneyField(allow_null=True, help_text=_("What can be spent now; null: no limit."))
    status = AccountStatusField()
    state = serializers.ChoiceField(
        choices=[
            (name, name) for name in ("closed", "frozen", "expired", "not_yet_active", "ready")
        ],
        help_text=_("What the card can do now."),
    )
    message = serializers.CharField(help_text=_("The same sentence the balance check page shows."))
    start_date = serializers.DateTimeField(allow_null=True)
    end_date = serializers.DateTimeField(allow_null=True)


def card_balance(card: Account, code: str) -> dict[str, Any]:
    """The data of :class:`CardBalanceSerializer` for ``card``."""
    from django.utils.formats import date_format

    message: Any
    if card.is_closed():
        state, message = "closed", CARD_STATES["closed"]
    elif card.is_frozen():
        state, message = "frozen", CARD_STATES["frozen"]
    elif card.is_expired():
        state = "expired"
        message = CARD_STATES["expired"] % {"end": date_format(card.end_date, "DATE_FORMAT")}
    elif not card.in_window():
        state = "not_yet_active"
        message = CARD_STATES["not_yet_active"] % {
            "start": date_format(card.start_date, "DATE_FORMAT")
        }
    elif card.available_amount is None:
        state, message = "ready", CARD_STATES["ready"]
    else:
        state = "ready"
        message = CARD_STATES["ready_to_spend"] % {"available": card.available_amount}
    return {
        "code": format_code(code),
        "currency": card.currency,
        "balance": card.balance,
        "held": card.held,
        "available": card.available_amount,
        "status": card.status,
        "state": state,
        "message": str(message),
        "start_date": card.start_date,
        "end_date": card.end_date,
    }


# Requests ----------------------------------------------------------------------

NO_SOURCE = _("No account you may pay from has this id.")
NO_DESTINATION = _("No account you may pay into has this id.")
NO_ACCOUNT = _("No account has this id.")


def _text(max_length: int | None = None, **kwargs: Any) -> StrictCharField:
    kwargs.setdefault("required", False)
    if max_length is not None:
        kwargs["max_length"] = max_length
    return StrictCharField(**kwargs)


def effective_at_field(help_text: Any = None) -> AwareDateTimeField:
    """An optional ``effective_at`` of a request (the facade judges it against its clock)."""
    return AwareDateTimeField(
        required=False,
        help_text=help_text
        or _(
            "When it happened in the world, with its UTC offset; not after the posting "
            "time (400 invalid_argument); default: the posting time."
        ),
    )


def both_accounts(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with its source and destination ids replaced by their accounts (one query)."""
    found = Account.objects.in_bulk([attrs["source"], attrs["destination"]])
    for name in ("source", "destination"):
        if attrs[name] not in found:
            raise serializers.ValidationError({name: [NO_ACCOUNT]}, code="does_not_exist")
        attrs[name] = found[attrs[name]]
    return attrs


class MoneyRequest(StrictSerializer):
    """Checks the amount's decimal places against its currency (never rounded)."""

    amount_required = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        amount, currency = attrs.get("amount"), attrs.get("currency")
        if (amount is None) != (currency is None):
            missing = "currency" if currency is None else "amount"
            raise serializers.ValidationError(
                {missing: [_("Give amount and currency together.")]}, code="required"
            )
        if amount is not None and currency is not None:
            check_places(amount, currency)
            attrs["money"] = Money(amount, currency)
        else:
            attrs["money"] = None
        return attrs


class TransferRequest(MoneyRequest):
    source = AccountIdField(help_text=_("Id of the account to debit."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account to credit."))
    amount = AmountField()
    currency = CurrencyField()
    merchant_reference = _text(
        128, allow_null=True, help_text=_("Your reference, e.g. an order number.")
    )
    description = _text(allow_blank=True, help_text=_("Shown on statements."))
    allow_partial = StrictBooleanField(
        required=False,
        default=False,
        help_text=_("Move as much of the amount as the source can cover now (at least 0.01)."),
    )
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own, stored on the transfer.")
    )
    effective_at = effective_at_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        user = self.context["request"].user
        source = debitable_accounts(user).filter(pk=attrs["source"]).first()
        if source is None:
            raise serializers.ValidationError({"source": [NO_SOURCE]}, code="does_not_exist")
        destination = Account.objects.filter(pk=attrs["destination"]).first()
        if destination is None or not (can_move_money(user) or may_pay(user, source, destination)):
            raise serializers.ValidationError(
                {"destination": [NO_DESTINATION]}, code="does_not_exist"
            )
        attrs["source"], attrs["destination"] = source, destination
        return attrs


class ReverseRequest(MoneyRequest):
    amount = AmountField(
        required=False, help_text=_("How much to reverse; leave out for all that is left.")
    )
    currency = CurrencyField(required=False, help_text=_("Required with amount."))
    merchant_reference = _text(128, allow_null=True, help_text=_("Default: the original's."))
    description = _text(allow_blank=True, help_text=_("Why; shown on statements."))
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own; default: the original's.")
    )
    effective_at = effective_at_field()


class HoldRequest(MoneyRequest):
    source = AccountIdField(help_text=_("Id of the account to reserve money on."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account a capture will pay."))
    amount = AmountField()
    currency = CurrencyField()
    expires_at = AwareDateTimeField(
        required=False,
        allow_null=True,
        help_text=_("From then on the hold reserves nothing; null or left out: never."),
    )
    merchant_reference = _text(128, allow_null=True, help_text=_("Your reference."))
    description = _text(allow_blank=True)
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own, stored on the hold.")
    )
    effective_at = effective_at_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return both_accounts(super().validate(attrs))


class RepayRequest(MoneyRequest):
    source = AccountIdField(help_text=_("Id of the account the money comes from."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account whose debt is repaid."))
    amount = AmountField(help_text=_("The most to repay: less moves if the debt is smaller."))
    currency = CurrencyField()
    merchant_reference = _text(128, allow_null=True, help_text=_("Your reference."))
    description = _text(allow_blank=True, help_text=_("Shown on statements."))
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own, stored on the repaying transfer.")
    )
    effective_at = effective_at_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return both_accounts(super().validate(attrs))


class BatchTransferRequest(MoneyRequest):
    """One transfer of a batch: what ``POST transfers/`` takes, but ``allow_partial`` too."""

    source = AccountIdField(help_text=_("Id of the account to debit."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account to credit."))
    amount = AmountField()
    currency = CurrencyField()
    merchant_reference = _text(128, allow_null=True, help_text=_("Your reference."))
    description = _text(allow_blank=True, help_text=_("Default: the batch's description."))
    allow_partial = StrictBooleanField(
        required=False,
        default=False,
        help_text=_("Move as much of the amount as the source can cover then (at least 0.01)."),
    )
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own, stored on this transfer.")
    )
    effective_at = effective_at_field(
        _(
            "When it happened in the world, with its UTC offset; not after the posting "
            "time; default: the batch's effective_at, else the posting time."
        )
    )


class BatchRequest(StrictSerializer):
    transfers = BatchTransferRequest(
        many=True, help_text=_("The transfers, in the order they are judged and posted.")
    )
    atomic = StrictBooleanField(
        required=False,
        default=True,
        help_text=_(
            "true (the default): linked, all or nothing; false: independent, each request "
            "posted or refused on its own."
        ),
    )
    description = _text(
        allow_blank=True, help_text=_("The batch's, and each transfer's unless it has its own.")
    )
    metadata = MetadataField(
        required=False,
        help_text=_("A JSON object of your own, stored on the batch (not on its transfers)."),
    )
    effective_at = effective_at_field(
        _(
            "Each transfer's unless it has its own, with its UTC offset; not after the "
            "posting time (400 invalid_argument); default: the posting time."
        )
    )

    def validate_transfers(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not 1 <= len(value) <= conf.BATCH_MAX_SIZE:
            raise serializers.ValidationError(
                _("Give from 1 to %(max)s transfers.") % {"max": conf.BATCH_MAX_SIZE}
            )
        ids = {item[name] for item in value for name in ("source", "destination")}
        found = Account.objects.in_bulk(list(ids))
        errors: list[dict[str, Any]] = []
        for item in value:
            missing = {
                name: [NO_ACCOUNT] for name in ("source", "destination") if item[name] not in found
            }
            errors.append(missing)
        if any(errors):
            raise serializers.ValidationError(errors, code="does_not_exist")
        for item in value:
            item["source"], item["destination"] = found[item["source"]], found[item["destination"]]
        return value


class CaptureRequest(MoneyRequest):
    amount = AmountField(required=False, help_text=_("How much to capture; default: all of it."))
    currency = CurrencyField(required=False, help_text=_("Required with amount."))
    description = _text(allow_blank=True, help_text=_("Default: the hold's description."))
    metadata = MetadataField(
        required=False, help_text=_("A JSON object of your own; default: the hold's.")
    )
    effective_at = effective_at_field()


class ReleaseRequest(StrictSerializer):
    """A release takes no fields."""


class BalanceCheckRequest(StrictSerializer):
    code = _text(
        64,
        required=True,
        help_text=_("The code printed on the card, in any case, with or without dashes."),
    )

    def validate_code(self, value: str) -> str:
        code = normalize_code(value)
        if not code:
            raise serializers.ValidationError(
                _("Enter the code printed on the card."), code="required"
            )
        return code


# Query parameters ----------------------------------------------------------------------


@extend_schema_field({"type": "string"})
class _QueryText(serializers.CharField):
    pass


class AccountFilter(StrictSerializer):
    """The account list's filters; every one narrows what the user may see anyway."""

    type = _QueryText(required=False, help_text=_("An account type's code (subtypes included)."))
    status = AccountStatusField(required=False, help_text=_("open, frozen or closed."))
    currency = CurrencyField(required=False, help_text=_("An ISO 4217 currency code."))
    user = _QueryText(
        required=False, help_text=_("A username: accounts where they are primary or secondary.")
    )
    code = _QueryText(required=False, help_text=_("An account's code, as typed."))
    cursor = _QueryText(required=False)
    page_size = _QueryText(required=False)

    def validate_type(self, value: str) -> AccountType:
        account_type = AccountType.objects.filter(code=value).first()
        if account_type is None:
            raise serializers.ValidationError(_("No account type has this code."))
        return account_type


class PageFilter(StrictSerializer):
    """A list's cursor and page size, and nothing else."""

    cursor = _QueryText(required=False)
    page_size = _QueryText(required=False)


class StatementFilter(StrictSerializer):
    start = _QueryText(required=False)
    end = _QueryText(required=False)
    order = serializers.ChoiceField(choices=["oldest", "newest"], required=False)
    date_field = serializers.ChoiceField(choices=["created", "effective_at"], required=False)
    cursor = _QueryText(required=False)
    page_size = _QueryText(required=False)

    def _moment(self, value: str) -> Any:
        moment = parse_day_or_moment(value)
        if moment is None:
            raise serializers.ValidationError(
                _("Give a date (2026-03-01) or a date and time with its UTC offset.")
            )
        return moment

    def validate_start(self, value: str) -> Any:
        return self._moment(value)

    def validate_end(self, value: str) -> Any:
        return self._moment(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None:
            if window_bound(start, end=False) > window_bound(end, end=True):
                raise serializers.ValidationError({"end": [_("The end is before the start.")]})
        return attrs
