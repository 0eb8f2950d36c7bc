"""
The REST API's views, one module per resource. Every write goes through ``accounts.facade``.

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

Modules: ``base`` (what every view shares: ``LedgerView``, the
``Idempotency-Key``), ``accounts``, ``transfers``, ``holds``, ``batches``,
``repayments`` and ``cards`` (a gift card's balance). Every view is
importable from here too.
"""

from .accounts import AccountDetailView, AccountListView, DeclineListView, StatementView
from .base import IDEMPOTENCY_KEY_LENGTH, LedgerView, MovingView, idempotency_key
from .batches import BatchCreateView, BatchDetailView
from .cards import BalanceCheckView
from .holds import HoldCaptureView, HoldCreateView, HoldDetailView, HoldReleaseView
from .repayments import RepaymentCreateView
from .transfers import TransferCreateView, TransferDetailView, TransferReverseView

__all__ = [
    "IDEMPOTENCY_KEY_LENGTH",
    "AccountDetailView",
    "AccountListView",
    "BalanceCheckView",
    "BatchCreateView",
    "BatchDetailView",
    "DeclineListView",
    "HoldCaptureView",
    "HoldCreateView",
    "HoldDetailView",
    "HoldReleaseView",
    "LedgerView",
    "MovingView",
    "RepaymentCreateView",
    "StatementView",
    "TransferCreateView",
    "TransferDetailView",
    "TransferReverseView",
    "idempotency_key",
]
