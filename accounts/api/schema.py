"""
OpenAPI documentation shared by the API's views: the error body, the error
codes each operation answers with (with an example of each), the
``Idempotency-Key`` header, the path parameters, and :func:`operation`, the
one way a view documents its operation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers

from .errors import CODES
from .fields import MoneySerializer


class ErrorFactsSerializer(serializers.Serializer[dict[str, Any]]):
    """What the ledger knew when it refused; only the facts that apply are present."""

    account = serializers.IntegerField(required=False, help_text=_("The account at issue."))
    source = serializers.IntegerField(required=False)  # type: ignore[assignment]
    destination = serializers.IntegerField(required=False)
    amount = MoneySerializer(required=False, help_text=_("The amount asked for."))
    available = MoneySerializer(required=False, help_text=_("What the account can spend now."))
    credit_limit = MoneySerializer(
        required=False, allow_null=True, help_text=_("The account's credit limit (null: none).")
    )
    held = MoneySerializer(required=False, help_text=_("What the hold reserves."))
    remaining = MoneySerializer(required=False, help_text=_("What is left to reverse."))
    minimum = MoneySerializer(required=False)
    maximum = MoneySerializer(required=False)
    balance = MoneySerializer(required=False)
    transfer = serializers.CharField(required=False, help_text=_("A transfer's reference."))
    hold = serializers.CharField(required=False, help_text=_("A hold's reference."))
    existing = serializers.CharField(
        required=False, help_text=_("The transfer or hold the Idempotency-Key already made.")
    )
    status = serializers.CharField(required=False, help_text=_("A hold's status."))
    currency = serializers.CharField(required=False)
    expected = serializers.CharField(required=False)
    source_currency = serializers.CharField(required=False)
    destination_currency = serializers.CharField(required=False)
    action = serializers.CharField(required=False)
    start_date = serializers.DateTimeField(required=False)
    end_date = serializers.DateTimeField(required=False)
    expires_at = serializers.DateTimeField(required=False)
    effective_at = serializers.DateTimeField(
        required=False, help_text=_("An effective date refused as later than the posting time.")
    )
    now = serializers.DateTimeField(
        required=False, help_text=_("The database's clock when the ledger decided.")
    )
    retry_after = serializers.IntegerField(required=False, help_text=_("Seconds to wait."))
    period = serializers.ChoiceField(
        choices=["day", "week", "month"],
        required=False,
        help_text=_("The spending limit's period (the one allowing the least)."),
    )
    limit = MoneySerializer(required=False, help_text=_("The spending limit of that period."))
    used = MoneySerializer(required=False, help_text=_("What was spent in the period so far."))
    index = serializers.IntegerField(
        required=False,
        help_text=_("A batch: the position (from 0) of the request that was refused."),
    )


class ErrorSerializer(serializers.Serializer[dict[str, Any]]):
    """Every error: a stable machine code, a message for a person, and what applies of the rest."""

    code = serializers.ChoiceField(
        choices=sorted(CODES), help_text=_("Stable machine code: branch on this.")
    )
    message = serializers.CharField(help_text=_("For the customer, in the request's language."))
    facts = ErrorFactsSerializer(required=False)
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=_("Bad input: each field (or header) named, with what is wrong with it."),
    )


def _gbp(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "GBP"}


#: An example body for each code (the message and facts as the API writes them).
EXAMPLES: dict[str, dict[str, Any]] = {
    "invalid": {
        "message": "Invalid input: amount.",
        "fields": {
            "amount": [
                'Amounts are decimal strings such as "10.00", never JSON numbers (got float).'
            ]
        },
    },
    "parse_error": {"message": "JSON parse error - Expecting value: line 1 column 12 (char 11)"},
    "insufficient_funds": {
        "message": "Account Barry's store credit cannot be debited £80.00: only £41.50 is "
        "available.",
        "facts": {
            "account": 7,
            "amount": _gbp("80.00"),
            "available": _gbp("41.50"),
            "credit_limit": _gbp("0.00"),
        },
    },
    "spending_limit_reached": {
        "message": "Alice's card can spend only £30.00 more today.",
        "facts": {
            "account": 7,
            "amount": _gbp("45.00"),
            "period": "day",
            "limit": _gbp("400.00"),
            "used": _gbp("370.00"),
            "available": _gbp("30.00"),
        },
    },
    "retryable_conflict": {
        "message": "The ledger was busy with the same accounts; nothing was done. Please try "
        "again.",
    },
    "idempotency_conflict": {
        "message": "Idempotency key 'api:4:order-1001' was already used, by GX7K2M9QHT4RWB3N, "
        "with different details; use a new key for a new operation.",
        "facts": {"existing": "GX7K2M9QHT4RWB3N"},
    },
    "account_frozen": {"message": "Account Lost card is frozen.", "facts": {"account": 14}},
    "account_closed": {"message": "Account Old wallet is closed.", "facts": {"account": 15}},
    "account_expired": {
        "message": "Account 9X2M-... expired on 2026-05-01 23:59:59.999999+01:00.",
        "facts": {"account": 11, "end_date": "2026-05-01T23:59:59.999999+01:00"},
    },
    "invalid_reversal": {
        "message": "Cannot reverse £30.00 of transfer GX7K2M9QHT4RWB3N: only £12.00 is left to "
        "reverse.",
        "facts": {
            "transfer": "GX7K2M9QHT4RWB3N",
            "amount": _gbp("30.00"),
            "remaining": _gbp("12.00"),
        },
    },
    "hold_resolved": {
        "message": "Hold 4WB3NHT7KQ2M9XDR is already captured; a hold can be resolved only once.",
        "facts": {"hold": "4WB3NHT7KQ2M9XDR", "status": "captured"},
    },
    "capture_exceeds_hold": {
        "message": "Cannot capture £8.00: hold 4WB3NHT7KQ2M9XDR reserves only £6.00.",
        "facts": {"hold": "4WB3NHT7KQ2M9XDR", "amount": _gbp("8.00"), "held": _gbp("6.00")},
    },
    "currency_mismatch": {
        "message": "Cannot transfer from Household wallet (GBP) to Alice's euro wallet (EUR).",
        "facts": {
            "source": 8,
            "destination": 9,
            "source_currency": "GBP",
            "destination_currency": "EUR",
        },
    },
    "lookup_blocked": {
        "message": "Too many codes that match no gift card were tried from your network. For your "
        "security, code lookups are paused: try again in 15 minute(s).",
        "facts": {"retry_after": 900},
    },
    "not_found": {"message": "Not found."},
    "not_authenticated": {"message": "Authentication credentials were not provided."},
    "authentication_failed": {"message": "Invalid token."},
    "permission_denied": {
        "message": "Only staff and services with the accounts.move_money permission may do this."
    },
}


def example(code: str) -> dict[str, Any]:
    """An example error body for ``code``."""
    body = {"code": code, "message": str(CODES[code].description)}
    body.update(EXAMPLES.get(code, {}))
    return body


#: Errors any authenticated endpoint can answer.
AUTH = ("not_authenticated", "authentication_failed")
#: Errors of any endpoint that reads a JSON body.
BODY = ("invalid", "parse_error", "unsupported_media_type")
#: Errors an endpoint that reads one object by its id or reference can answer.
READ_ONE = ("not_found", *AUTH)
#: What the ledger refuses a transfer or a hold with.
MOVE = (
    "invalid_amount",
    "same_account",
    "currency_mismatch",
    "account_closed",
    "account_frozen",
    "account_expired",
    "account_not_yet_active",
    "insufficient_funds",
    "spending_limit_reached",
    "idempotency_conflict",
    "retryable_conflict",
)


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: one per status, listing its codes, with examples."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in codes:
        by_status[CODES[code].status].append(code)
    responses: dict[int, OpenApiResponse] = {}
    for status, listed in sorted(by_status.items()):
        description = "Error codes: " + "; ".join(
            "``%s``: %s" % (code, CODES[code].description) for code in listed
        )
        examples = [
            OpenApiExample(code, value=example(code), response_only=True, status_codes=[status])
            for code in listed
        ]
        responses[status] = OpenApiResponse(ErrorSerializer, description, examples)
    return responses


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[!-~]{1,100}$",
    description=(
        "One key per intended operation (an order number, a UUID), up to 100 visible ASCII "
        "characters. Sending the same request again with the same key answers with the "
        "original result and moves nothing; the same key with a different request is "
        "refused with 409 idempotency_conflict. Keys are kept per user."
    ),
)


def moving(*codes: str) -> tuple[str, ...]:
    """The errors of an operation that moves or reserves money: ``codes`` among the rest."""
    return (*BODY, *AUTH, "permission_denied", *codes, *MOVE)


def path_parameter(name: str, kind: type[int | str], what: str) -> OpenApiParameter:
    """The URL's ``name`` (an id or a reference) of the object ``what`` names."""
    return OpenApiParameter(name, kind, OpenApiParameter.PATH, description="The %s." % what)


def request_example(name: str, value: dict[str, Any]) -> OpenApiExample:
    """An example of an operation's request body."""
    return OpenApiExample(name, request_only=True, value=value)


_View = TypeVar("_View", bound=Callable[..., Any])


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    description: str,
    answers: Mapping[int, Any],
    errors: tuple[str, ...],
    **documented: Any,
) -> Callable[[_View], _View]:
    """Document a view's method: ``extend_schema`` with what every operation of the API gives.

    ``answers``: the serializer (or ``OpenApiResponse``) of each success
    status; ``errors``: the codes it can answer with (:func:`error_responses`
    documents them). The rest (``parameters``, ``request``, ``examples``,
    ``auth``) goes to ``extend_schema`` as given.
    """
    return extend_schema(
        operation_id=operation_id,
        tags=[tag],
        summary=summary,
        description=description,
        responses={**answers, **error_responses(*errors)},
        **documented,
    )
