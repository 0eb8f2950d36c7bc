"""
Requests that cannot be answered as sent: an idempotency key reused with other
details (``IdempotencyConflict``), an operation the database aborted for a
concurrent change (``RetryableConflict``), and gift card codes that cannot be
made or looked up (``CodeGenerationError``, ``CodeLookupBlocked``).

Part of the one tree in :mod:`accounts.exceptions`; import them from there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from .exception_base import AccountException

if TYPE_CHECKING:
    from .models import Hold, Transfer


class IdempotencyConflict(AccountException):
    """An idempotency key was reused with different transfer details."""

    code = "idempotency_conflict"

    message = _(
        "Idempotency key %(key)r was already used, by %(existing)s, with different "
        "details; use a new key for a new operation."
    )
    user_template = _(
        "This was already submitted with different details. Reload the page and try again."
    )

    key: str
    #: The transfer or hold the key already belongs to.
    existing: Transfer | Hold


class CodeGenerationError(AccountException):
    """No unused code was found in ``attempts`` tries (the random source is suspect)."""

    code = "code_generation_failed"

    message = _(
        "Could not generate an unused code in %(attempts)s attempts; "
        "check the random number source."
    )
    user_template = _("No new gift card code could be made. Please try again.")

    attempts: int


class CodeLookupBlocked(AccountException):
    """The client address failed too many code lookups in a row; ``retry_after`` is in seconds."""

    code = "lookup_blocked"

    message = _(
        "Too many codes that match no gift card were tried from your network. "
        "For your security, code lookups are paused: try again in %(minutes)s minute(s)."
    )

    user_template = message

    #: Seconds until the address may look codes up again.
    retry_after: int
    #: The same, in whole minutes rounded up (at least 1).
    minutes: int

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after, minutes=max(1, math.ceil(retry_after / 60)))

    def user_facts(self) -> dict[str, str]:
        return {"minutes": str(self.minutes)}


class RetryableConflict(AccountException):
    """The database aborted the operation because a concurrent transaction changed the same rows.

    Nothing of it was committed, and running it again is safe. ``attempts``
    is how many times it was tried; ``in_transaction`` is True when it ran
    inside the caller's transaction, which is then marked for rollback: run
    the whole transaction again. ``error`` is the database's own error.
    Raised by ``accounts.retry.retry_on_conflict`` (every facade operation).
    """

    code = "retryable_conflict"

    message = _(
        "The database aborted %(operation)s because concurrent transactions changed the "
        "same rows (%(attempts)s attempts); nothing was written. Try again."
    )
    user_template = _(
        "The ledger was busy with the same accounts; nothing was done. Please try again."
    )
    in_transaction_message = _(
        "The database aborted %(operation)s because a concurrent transaction changed the "
        "same rows; nothing in this transaction can be committed. Roll it back and run the "
        "whole transaction again."
    )

    operation: str
    attempts: int
    in_transaction: bool
    error: Exception
