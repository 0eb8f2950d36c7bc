"""
What the API reads: request bodies and query parameters.

Each is checked completely before anything is locked: types, unknown fields,
amounts and their decimal places, and which accounts the user may name; the
facade then decides everything that depends on the database, under its row
locks. The fields take JSON as it is sent, without guessing
(``accounts.api.fields``).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...codes import normalize_code
from ...conf import conf
from ...exceptions import StrOrPromise
from ...fields import window_bound
from ...models import Account, AccountType
from ..fields import (
    AccountIdField,
    AmountField,
    AwareDateTimeField,
    CurrencyField,
    MetadataField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    check_places,
    parse_day_or_moment,
)
from ..permissions import can_move_money, debitable_accounts
from ..policy import may_pay
from .accounts import AccountStatusField

NO_SOURCE = _("No account you may pay from has this id.")
NO_DESTINATION = _("No account you may pay into has this id.")
NO_ACCOUNT = _("No account has this id.")


def text(max_length: int | None = None, **kwargs: Any) -> StrictCharField:
    """A JSON string of a request, optional unless ``required=True`` is given."""
    kwargs.setdefault("required", False)
    if max_length is not None:
        kwargs["max_length"] = max_length
    return StrictCharField(**kwargs)


def reference_field(help_text: StrOrPromise) -> StrictCharField:
    """A request's optional ``merchant_reference``: up to 128 characters, or null."""
    return text(128, allow_null=True, help_text=help_text)


def metadata_field(help_text: StrOrPromise) -> MetadataField:
    """A request's optional ``metadata``, checked as the ledger checks it."""
    return MetadataField(required=False, help_text=help_text)


def partial_field(help_text: StrOrPromise) -> StrictBooleanField:
    """A request's ``allow_partial``: false unless the request says true."""
    return StrictBooleanField(required=False, default=False, help_text=help_text)


def effective_at_field(help_text: StrOrPromise | None = None) -> AwareDateTimeField:
    """An optional ``effective_at`` of a request (the facade judges it against its clock)."""
    return AwareDateTimeField(
        required=False,
        help_text=help_text
        or _(
            "When it happened in the world, with its UTC offset; not after the posting "
            "time (400 invalid_argument); default: the posting time."
        ),
    )


class MoneyRequest(StrictSerializer):
    """Checks the amount's decimal places against its currency (never rounded)."""

    # (The docstring is the schema's description of every request built on
    # this one.) The validated data gains "money": the amount as Money, or
    # None when the request leaves both amount and currency out.

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


class BetweenAccountsRequest(MoneyRequest):
    # A request naming a source and a destination by id: both must exist. Who
    # may name them is the view's permission (accounts.move_money); the ids
    # become the accounts, read in one query. No docstring of its own: the
    # schema describes the requests built on it with MoneyRequest's.

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        found = Account.objects.in_bulk([attrs["source"], attrs["destination"]])
        for name in ("source", "destination"):
            if attrs[name] not in found:
                raise serializers.ValidationError({name: [NO_ACCOUNT]}, code="does_not_exist")
            attrs[name] = found[attrs[name]]
        return attrs


# Moving money ----------------------------------------------------------------------


class TransferRequest(MoneyRequest):
    source = AccountIdField(help_text=_("Id of the account to debit."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account to credit."))
    amount = AmountField()
    currency = CurrencyField()
    merchant_reference = reference_field(_("Your reference, e.g. an order number."))
    description = text(allow_blank=True, help_text=_("Shown on statements."))
    allow_partial = partial_field(
        _("Move as much of the amount as the source can cover now (at least 0.01).")
    )
    metadata = metadata_field(_("A JSON object of your own, stored on the transfer."))
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
    merchant_reference = reference_field(_("Default: the original's."))
    description = text(allow_blank=True, help_text=_("Why; shown on statements."))
    metadata = metadata_field(_("A JSON object of your own; default: the original's."))
    effective_at = effective_at_field()


class RepayRequest(BetweenAccountsRequest):
    source = AccountIdField(help_text=_("Id of the account the money comes from."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account whose debt is repaid."))
    amount = AmountField(help_text=_("The most to repay: less moves if the debt is smaller."))
    currency = CurrencyField()
    merchant_reference = reference_field(_("Your reference."))
    description = text(allow_blank=True, help_text=_("Shown on statements."))
    metadata = metadata_field(_("A JSON object of your own, stored on the repaying transfer."))
    effective_at = effective_at_field()


class HoldRequest(BetweenAccountsRequest):
    source = AccountIdField(help_text=_("Id of the account to reserve money on."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account a capture will pay."))
    amount = AmountField()
    currency = CurrencyField()
    expires_at = AwareDateTimeField(
        required=False,
        allow_null=True,
        help_text=_("From then on the hold reserves nothing; null or left out: never."),
    )
    merchant_reference = reference_field(_("Your reference."))
    description = text(allow_blank=True)
    metadata = metadata_field(_("A JSON object of your own, stored on the hold."))
    effective_at = effective_at_field()


class CaptureRequest(MoneyRequest):
    amount = AmountField(required=False, help_text=_("How much to capture; default: all of it."))
    currency = CurrencyField(required=False, help_text=_("Required with amount."))
    description = text(allow_blank=True, help_text=_("Default: the hold's description."))
    metadata = metadata_field(_("A JSON object of your own; default: the hold's."))
    effective_at = effective_at_field()


class ReleaseRequest(StrictSerializer):
    """A release takes no fields."""


class BatchTransferRequest(MoneyRequest):
    """One transfer of a batch: what ``POST transfers/`` takes, but ``allow_partial`` too."""

    source = AccountIdField(help_text=_("Id of the account to debit."))  # type: ignore[assignment]
    destination = AccountIdField(help_text=_("Id of the account to credit."))
    amount = AmountField()
    currency = CurrencyField()
    merchant_reference = reference_field(_("Your reference."))
    description = text(allow_blank=True, help_text=_("Default: the batch's description."))
    allow_partial = partial_field(
        _("Move as much of the amount as the source can cover then (at least 0.01).")
    )
    metadata = metadata_field(_("A JSON object of your own, stored on this transfer."))
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
    description = text(
        allow_blank=True, help_text=_("The batch's, and each transfer's unless it has its own.")
    )
    metadata = metadata_field(
        _("A JSON object of your own, stored on the batch (not on its transfers).")
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


# Gift cards ----------------------------------------------------------------------


class BalanceCheckRequest(StrictSerializer):
    code = text(
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
class QueryText(serializers.CharField):
    """A query parameter's text."""


def paging() -> tuple[QueryText, QueryText]:
    """A list's ``cursor`` and ``page_size`` (``KeysetPage`` reads and checks them).

    Declared last in each filter (``cursor, page_size = paging()``), so that a
    filter's own fields are reported first.
    """
    return QueryText(required=False), QueryText(required=False)


class AccountFilter(StrictSerializer):
    """The account list's filters; every one narrows what the user may see anyway."""

    type = QueryText(required=False, help_text=_("An account type's code (subtypes included)."))
    status = AccountStatusField(required=False, help_text=_("open, frozen or closed."))
    currency = CurrencyField(required=False, help_text=_("An ISO 4217 currency code."))
    user = QueryText(
        required=False, help_text=_("A username: accounts where they are primary or secondary.")
    )
    code = QueryText(required=False, help_text=_("An account's code, as typed."))
    cursor, page_size = paging()

    def validate_type(self, value: str) -> AccountType:
        account_type: AccountType | None = AccountType.objects.filter(code=value).first()
        if account_type is None:
            raise serializers.ValidationError(_("No account type has this code."))
        return account_type


class StatementFilter(StrictSerializer):
    start = QueryText(required=False)
    end = QueryText(required=False)
    order = serializers.ChoiceField(choices=["oldest", "newest"], required=False)
    date_field = serializers.ChoiceField(choices=["created", "effective_at"], required=False)
    cursor, page_size = paging()

    def _moment(self, value: str) -> datetime.date:
        moment = parse_day_or_moment(value)
        if moment is None:
            raise serializers.ValidationError(
                _("Give a date (2026-03-01) or a date and time with its UTC offset.")
            )
        return moment

    def validate_start(self, value: str) -> datetime.date:
        return self._moment(value)

    def validate_end(self, value: str) -> datetime.date:
        return self._moment(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None:
            if window_bound(start, end=False) > window_bound(end, end=True):
                raise serializers.ValidationError({"end": [_("The end is before the start.")]})
        return attrs


class PageFilter(StrictSerializer):
    """A list's cursor and page size, and nothing else."""

    cursor, page_size = paging()
