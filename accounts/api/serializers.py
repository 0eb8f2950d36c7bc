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

from .. import amounts
from ..codes import format_code, normalize_code
from ..fields import window_bound
from ..models import Account, AccountType, Hold, Transaction, Transfer
from .errors import money_data
from .fields import (
    AccountIdField,
    AmountField,
    AwareDateTimeField,
    CurrencyField,
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

# Output ----------------------------------------------------------------------


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


class AccountSerializer(serializers.ModelSerializer):
    """An account with what it holds and what it can spend now."""

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
            "start_date",
            "end_date",
            "created",
            "primary_user",
        ]
        read_only_fields = fields

    def get_active(self, account: Account) -> bool:
        return account.is_active()


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
            "reversed_amount",
            "reversible_amount",
        ]
        read_only_fields = fields

    def _reversed(self, transfer: Transfer) -> Any:
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
    opening_balance = MoneyField(help_text=_("The balance at the start of the period."))
    closing_balance = MoneyField(help_text=_("The balance at the end of the period."))
    next = serializers.URLField(allow_null=True, help_text=_("The next (later) page, or null."))
    previous = serializers.URLField(
        allow_null=True, help_text=_("The previous (earlier) page, or null.")
    )
    results = StatementLineSerializer(many=True)


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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        found = Account.objects.in_bulk([attrs["source"], attrs["destination"]])
        for name in ("source", "destination"):
            if attrs[name] not in found:
                raise serializers.ValidationError({name: [NO_ACCOUNT]}, code="does_not_exist")
            attrs[name] = found[attrs[name]]
        return attrs


class CaptureRequest(MoneyRequest):
    amount = AmountField(required=False, help_text=_("How much to capture; default: all of it."))
    currency = CurrencyField(required=False, help_text=_("Required with amount."))
    description = _text(allow_blank=True, help_text=_("Default: the hold's description."))


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


class StatementFilter(StrictSerializer):
    start = _QueryText(required=False)
    end = _QueryText(required=False)
    order = serializers.ChoiceField(choices=["oldest", "newest"], required=False)
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
