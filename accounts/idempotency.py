"""
Idempotency keys: only an identical request is a replay.

A key names one request *as it was asked*: the operation and every argument
the caller gave (accounts, amount as requested, ``allow_partial``, the hold
or transfer acted on, references, description, user, expiry, metadata,
effective date). The row the
request wrote stores a fingerprint of that request
(``request_fingerprint``, a SHA-256 of its canonical form). A later call with
the same key is answered from that row only if its fingerprint is the same;
any difference, however small (12.75 asked where 20.00 was asked and 7.25
moved, another description), raises ``IdempotencyConflict`` and writes
nothing.

Rejected alternative: comparing the new request with the *result* the first
one produced (same accounts, amount moved at most the amount asked). A
partial transfer that moved 7.25 of 20.00 then "matches" a later request for
12.75, which is a different payment: the caller is told it was made, and
12.75 is never collected.

The lookup runs under the account locks, in the transaction that would
write; a concurrent identical request that committed first is found after
the unique index made this one wait (:func:`after_race`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, models

from .exceptions import IdempotencyConflict

Row = TypeVar("Row", bound=models.Model)


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # 20, 20.0 and 20.00 are the same amount.
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    if value is None or isinstance(value, (str, int, bool, float)):
        # Floats only in metadata, finite (accounts.arguments.metadata).
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    raise TypeError("No canonical form for %r" % (value,))


def fingerprint(operation: str, **request: Any) -> str:
    """The fingerprint of one request: its operation and every argument, canonically."""
    canonical = {name: _canonical(value) for name, value in request.items()}
    text = json.dumps([operation, canonical], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def find(model: type[Row], using: str, key: str | None) -> Row | None:
    """The row written by an earlier request with ``key``, if any (one indexed query)."""
    if key is None:
        return None
    return model._default_manager.using(using).filter(idempotency_key=key).first()


def replay(
    existing: Row, key: str | None, digest: str | None, *, legacy_match: bool = False
) -> Row:
    """Answer a repeated key: ``existing`` if the request is identical, else raise.

    ``legacy_match`` decides for rows written before fingerprints were
    stored (``request_fingerprint`` is NULL): the caller's comparison of
    accounts and amount.
    """
    stored = existing.request_fingerprint  # type: ignore[attr-defined]
    if stored == digest or (stored is None and legacy_match):
        return existing
    raise IdempotencyConflict(key=key, existing=existing)


def after_race(model: type[Row], using: str, key: str | None, error: IntegrityError) -> Row:
    """After an ``IntegrityError``: the row a concurrent request committed with ``key``.

    Re-raises ``error`` when there is no such row (the error had another cause).
    """
    existing = find(model, using, key)
    if existing is None:
        raise error
    return existing


class Request:
    """One call of an operation as its caller made it, for its idempotency key.

    ``arguments`` are the checked arguments as given (``None`` where the
    caller gave nothing), never values the ledger derived from them.
    """

    def __init__(self, operation: str, key: str | None, **arguments: Any) -> None:
        self.operation = operation
        self.key = key
        self.arguments = arguments

    def fingerprint(self) -> str | None:
        """The request's fingerprint (``None`` without a key: nothing will compare it)."""
        if self.key is None:
            return None
        return fingerprint(self.operation, **self.arguments)

    def find(self, model: type[Row], using: str) -> Row | None:
        """The row an earlier request with this key wrote, if any."""
        return find(model, using, self.key)

    def replay(self, existing: Row, *, legacy_match: bool) -> Row:
        """``existing`` if this request is the one that wrote it, else ``IdempotencyConflict``."""
        return replay(existing, self.key, self.fingerprint(), legacy_match=legacy_match)
