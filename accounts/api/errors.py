"""
Errors as JSON: a stable machine code, a message for the customer, the facts.

Every error the API answers has the same shape::

    {"code": "insufficient_funds",
     "message": "Account Barry's store credit cannot be debited £80.00: ...",
     "facts": {"account": 7, "amount": {"amount": "80.00", "currency": "GBP"},
               "available": {"amount": "40.00", "currency": "GBP"},
               "credit_limit": {"amount": "0.00", "currency": "GBP"}}}

and, for bad input, ``"fields": {"amount": ["..."]}`` naming each field.

``code`` is what a client branches on; it never changes once published.
Ledger exceptions get theirs from :data:`LEDGER_ERRORS`, keyed by exception
class: an exception without an entry of its own answers as its nearest
ancestor that has one (a new ``InactiveAccount`` subclass is
``account_inactive`` until it is given its own code), so a new exception in
the core never turns into a 500. Register new exceptions with
:func:`register` as they are added (the test suite lists every class in
``accounts.exceptions`` and fails for one without its own entry).

``message`` is ``exc.user_message`` when the exception offers one, else
``str(exc)``: the ledger's messages are written for a person.

Statuses: 400 bad input, 401/403 authentication and permissions, 404 not
found (also for objects the user may not see: guessing ids tells nothing),
409 a conflict with an earlier request or the object's state, 422 refused by
a rule of the ledger, 429 too many failed code lookups.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from .. import exceptions as ledger
from ..amounts import MONEY_TYPES
from ..models import Account, Hold, Transfer


@dataclass(frozen=True)
class ErrorKind:
    """A machine code, its HTTP status and what it means (for the schema)."""

    code: str
    status: int
    description: str


#: Ledger exception class → how the API answers it. Subclasses without an
#: entry of their own answer as their nearest listed ancestor.
LEDGER_ERRORS: dict[type[ledger.AccountException], ErrorKind] = {}

#: Every code the API answers with, ledger and API alike, by code.
CODES: dict[str, ErrorKind] = {}


def register(
    exc_class: type[ledger.AccountException], code: str, status: int, description: str
) -> None:
    """Give a ledger exception class its own machine code and HTTP status."""
    kind = ErrorKind(code, status, description)
    LEDGER_ERRORS[exc_class] = kind
    CODES[code] = kind


def _api_code(code: str, status: int, description: str) -> None:
    CODES[code] = ErrorKind(code, status, description)


# Codes of the API itself (requests, authentication, permissions).
_api_code("invalid", 400, "A field is missing, unknown or has a wrong type or value: see fields.")
_api_code("parse_error", 400, "The body is not valid JSON.")
_api_code("invalid_code", 400, "The gift card code has a typing mistake (its check character).")
_api_code("not_authenticated", 401, "No credentials were given (403 with session auth only).")
_api_code("authentication_failed", 401, "The credentials are wrong (403 with session auth only).")
_api_code(
    "permission_denied",
    403,
    "The user may not do this (or a session-authenticated request lacks its CSRF token).",
)
_api_code("not_found", 404, "No such object, or none the user may see.")
_api_code("card_not_found", 404, "No gift card has this code.")
_api_code("method_not_allowed", 405, "The endpoint does not accept this HTTP method.")
_api_code("not_acceptable", 406, "The API answers in JSON only.")
_api_code("unsupported_media_type", 415, "Send the body as application/json.")
_api_code("throttled", 429, "Too many requests (the project's DRF throttles).")

# Ledger exceptions, most specific first within each family.
register(ledger.AccountException, "refused", 422, "The ledger refused the operation.")
register(ledger.InvalidArgument, "invalid_argument", 400, "An argument was refused.")
register(ledger.InvalidAmount, "invalid_amount", 400, "The amount is not acceptable.")
register(ledger.InvalidAccount, "invalid_account", 400, "An account is not a saved account.")
register(ledger.SameAccount, "same_account", 400, "Source and destination are the same account.")
register(
    ledger.UnsupportedCurrency, "unsupported_currency", 400, "The currency is not one in use."
)
register(
    ledger.CurrencyMismatch,
    "currency_mismatch",
    422,
    "The currencies of amount and accounts differ.",
)
register(ledger.InactiveAccount, "account_inactive", 422, "An account cannot be used now.")
register(ledger.ClosedAccount, "account_closed", 422, "An account is closed.")
register(ledger.FrozenAccount, "account_frozen", 422, "An account is frozen.")
register(ledger.AccountExpired, "account_expired", 422, "An account's end date has passed.")
register(
    ledger.AccountNotYetActive, "account_not_yet_active", 422, "An account's start date is ahead."
)
register(
    ledger.InsufficientFunds, "insufficient_funds", 422, "The source cannot cover the amount."
)
register(
    ledger.SpendingLimitExceeded,
    "spending_limit_reached",
    422,
    "The source would go past a spending limit (day, week or month).",
)
register(
    ledger.IdempotencyConflict,
    "idempotency_conflict",
    409,
    "The Idempotency-Key was already used for a different request.",
)
register(ledger.InvalidReversal, "invalid_reversal", 422, "The transfer cannot be reversed so.")
register(ledger.HoldError, "hold_error", 422, "The hold cannot be captured or released so.")
register(ledger.HoldResolved, "hold_resolved", 409, "The hold was already resolved.")
register(ledger.HoldExpired, "hold_expired", 422, "The hold is past its expiry.")
register(
    ledger.CaptureExceedsHold, "capture_exceeds_hold", 422, "The capture is more than the hold."
)
register(ledger.AccountNotEmpty, "account_not_empty", 409, "The account still holds money.")
register(ledger.ProtectedAccount, "protected_account", 422, "Core accounts cannot be changed so.")
register(
    ledger.CodeGenerationError, "code_generation_failed", 503, "No unused code could be drawn."
)
register(
    ledger.CodeLookupBlocked,
    "lookup_blocked",
    429,
    "Too many failed code lookups from this network: wait Retry-After seconds.",
)
register(ledger.LedgerImmutable, "ledger_immutable", 409, "Ledger rows cannot be changed.")
register(
    ledger.RetryableConflict,
    "retryable_conflict",
    409,
    "A concurrent change aborted the request; nothing was written: send it again.",
)

# Collecting debts (accounts.collections).
register(
    ledger.InvalidCollectionPeriod,
    "invalid_collection_period",
    400,
    "A collection run's period or freeze moment is out of order.",
)
register(
    ledger.CollectionBeforeFreeze,
    "collection_before_freeze",
    400,
    "A collection run's collection date is not after its freeze.",
)
register(
    ledger.InvalidCollectionSource,
    "invalid_collection_source",
    400,
    "The account collected money comes from is missing or unfit.",
)
register(
    ledger.MixedCurrencyScope,
    "mixed_currency_scope",
    422,
    "A collection run's accounts are in several currencies: choose one.",
)
register(ledger.CollectionError, "collection_error", 422, "The collection cannot be handled so.")
register(
    ledger.CollectionRunConflict,
    "collection_run_conflict",
    409,
    "A collection run for this scope and period exists with other details.",
)
register(
    ledger.CollectionRunNotDue,
    "collection_run_not_due",
    422,
    "The collection run's freeze moment has not passed yet.",
)
register(ledger.DebtResolved, "debt_resolved", 409, "The debt was already settled or failed.")
register(
    ledger.SettlementExceedsDebt,
    "settlement_exceeds_debt",
    422,
    "The amount is more than the debt still owes.",
)


def kind_of(exc: ledger.AccountException) -> ErrorKind:
    """The entry for ``exc``'s class, or for its nearest ancestor that has one."""
    for cls in type(exc).__mro__:
        kind = LEDGER_ERRORS.get(cls)
        if kind is not None:
            return kind
    raise LookupError(type(exc))  # unreachable: AccountException itself is listed


class InvalidCode(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_code"
    default_detail = _("This is not a valid gift card code: check it for typing mistakes.")


class CardNotFound(exceptions.APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "card_not_found"
    default_detail = _("No gift card has this code.")


# Facts ----------------------------------------------------------------------

#: Context names of the ledger's exceptions shown as facts, with the name they get.
_RENAMED = {"scur": "source_currency", "dcur": "destination_currency"}
_TEXT_FACTS = {"status", "currency", "expected", "scur", "dcur", "action", "period"}


def money_data(value: Any) -> dict[str, str] | None:
    """``{"amount": "10.00", "currency": "GBP"}`` for a ``Money``; ``None`` for ``None``."""
    if value is None:
        return None
    return {"amount": str(value.amount), "currency": value.currency.code}


def facts_of(exc: ledger.AccountException) -> dict[str, Any]:
    """What the exception knows, as JSON: amounts with their currency, ids, references.

    Only what the request already named or may see: account ids, the
    references of the transfer or hold at issue, amounts, dates and states,
    a spending limit's period, and a batch request's position (``index``).
    An idempotency key is not repeated (the API stores it under the user's
    namespace); the existing transfer or hold is named instead.
    """
    facts: dict[str, Any] = {}
    for name, value in getattr(exc, "context", {}).items():
        if isinstance(value, MONEY_TYPES):
            facts[name] = money_data(value)
        elif isinstance(value, Account):
            facts[name] = value.pk
        elif isinstance(value, (Transfer, Hold)):
            facts[name] = value.reference
        elif isinstance(value, datetime.datetime):
            facts[name] = value.isoformat()
        elif name == "retry_after":
            facts[name] = value
        elif name in _TEXT_FACTS and isinstance(value, str):
            facts[_RENAMED.get(name, name)] = value
    account = getattr(exc, "account", None)
    if isinstance(exc, ledger.InsufficientFunds) and isinstance(account, Account):
        facts["credit_limit"] = money_data(account.credit_limit)
    # A request of a batch: its position (``facade.transfer_many`` sets it).
    index = getattr(exc, "index", None)
    if isinstance(index, int) and not isinstance(index, bool):
        facts["index"] = index
    return facts


def message_of(exc: Exception) -> str:
    """The message for the customer: ``exc.user_message`` if it has one, else ``str(exc)``."""
    return str(getattr(exc, "user_message", None) or exc)


# The handler ----------------------------------------------------------------------


def _fields(detail: Any) -> dict[str, list[str]]:
    """Each field's messages; a field inside a list or object is named by its path.

    ``{"transfers": [{}, {"amount": [...]}]}`` becomes ``{"transfers.1.amount": [...]}``.
    """
    found: dict[str, list[str]] = {}
    _flatten(detail, "", found)
    return found


def _flatten(detail: Any, name: str, found: dict[str, list[str]]) -> None:
    def inner(key: Any) -> str:
        return "%s.%s" % (name, key) if name else str(key)

    if isinstance(detail, dict):
        for key, value in detail.items():
            # A nested object's own errors (a list that is not a list) are its field's.
            own = name and key == api_settings.NON_FIELD_ERRORS_KEY
            _flatten(value, name if own else inner(key), found)
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for index, item in enumerate(detail):
            _flatten(item, inner(index), found)
    else:
        messages = detail if isinstance(detail, list) else [detail]
        found.setdefault(name or "non_field_errors", []).extend(str(m) for m in messages)


def error_body(exc: ledger.AccountException) -> dict[str, Any]:
    """A ledger exception in the API's error shape: code, message and facts."""
    body: dict[str, Any] = {"code": kind_of(exc).code, "message": message_of(exc)}
    facts = facts_of(exc)
    if facts:
        body["facts"] = facts
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer ledger exceptions and DRF's own errors in the API's error shape.

    The API's views use it whatever the project's ``EXCEPTION_HANDLER`` is;
    anything else (a database error, a bug) is left to Django: a 500.
    """
    if isinstance(exc, ledger.AccountException):
        answer = Response(error_body(exc), status=kind_of(exc).status)
        if isinstance(exc, ledger.CodeLookupBlocked):
            answer["Retry-After"] = str(exc.retry_after)
        return answer
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        response.data = {
            "code": "invalid",
            "message": str(_("Invalid input: %(fields)s.") % {"fields": ", ".join(fields)}),
            "fields": fields,
        }
    else:
        code = exc.get_codes()
        response.data = {
            "code": code if isinstance(code, str) and code in CODES else exc.default_code,
            "message": str(exc.detail),
        }
    return response
