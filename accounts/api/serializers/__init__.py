"""
What the API reads and writes, one module per resource.

Output serializers turn the ledger's objects into JSON (money as decimal
strings with their currency). Request serializers check a request's body
completely before anything is locked: types, unknown fields, amounts and
their decimal places, and which accounts the user may name; the facade then
decides everything that depends on the database, under its row locks.

Modules: ``requests`` (every request body and query parameter the API
reads), and what it answers with, by resource: ``accounts`` (with their
spending limits), ``statements`` (statements and declined payments),
``transfers`` (and repayments), ``holds``, ``batches``, ``cards`` (a gift
card's balance by its code); ``common`` holds what those share. Every
serializer is importable from here too.
"""

from .accounts import (
    AccountPageSerializer,
    AccountSerializer,
    AccountStatusField,
    AccountTypeSerializer,
    PeriodField,
    SpendingSerializer,
    spending_of,
)
from .batches import BatchItemSerializer, BatchItemStatusField, BatchSerializer
from .cards import CARD_STATES, CardBalanceSerializer, card_balance
from .common import TextChoicesField
from .holds import HoldSerializer, HoldStatusField
from .requests import (
    NO_ACCOUNT,
    NO_DESTINATION,
    NO_SOURCE,
    AccountFilter,
    BalanceCheckRequest,
    BatchRequest,
    BatchTransferRequest,
    BetweenAccountsRequest,
    CaptureRequest,
    HoldRequest,
    MoneyRequest,
    PageFilter,
    ReleaseRequest,
    RepayRequest,
    ReverseRequest,
    StatementFilter,
    TransferRequest,
    effective_at_field,
)
from .statements import (
    DECLINE_MONEY_FACTS,
    DeclineFactsSerializer,
    DeclineOperationField,
    DeclinePageSerializer,
    DeclineSerializer,
    StatementLineSerializer,
    StatementSerializer,
)
from .transfers import RepaymentSerializer, TransferSerializer, reversed_totals

__all__ = [
    "CARD_STATES",
    "DECLINE_MONEY_FACTS",
    "NO_ACCOUNT",
    "NO_DESTINATION",
    "NO_SOURCE",
    "AccountFilter",
    "AccountPageSerializer",
    "AccountSerializer",
    "AccountStatusField",
    "AccountTypeSerializer",
    "BalanceCheckRequest",
    "BatchItemSerializer",
    "BatchItemStatusField",
    "BatchRequest",
    "BatchSerializer",
    "BatchTransferRequest",
    "BetweenAccountsRequest",
    "CaptureRequest",
    "CardBalanceSerializer",
    "DeclineFactsSerializer",
    "DeclineOperationField",
    "DeclinePageSerializer",
    "DeclineSerializer",
    "HoldRequest",
    "HoldSerializer",
    "HoldStatusField",
    "MoneyRequest",
    "PageFilter",
    "PeriodField",
    "ReleaseRequest",
    "RepayRequest",
    "RepaymentSerializer",
    "ReverseRequest",
    "SpendingSerializer",
    "StatementFilter",
    "StatementLineSerializer",
    "StatementSerializer",
    "TextChoicesField",
    "TransferRequest",
    "TransferSerializer",
    "card_balance",
    "effective_at_field",
    "reversed_totals",
    "spending_of",
]
