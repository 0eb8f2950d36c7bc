"""
The public write API of the ledger.

Every function here checks its arguments (nothing is written for bad input)
and hands the operation to the engine, which runs it on the one locked,
atomic path (``accounts.posting``): the accounts it touches are locked in
primary-key order and re-read, with the database's clock, and every rule
(``accounts.rules``) is judged on those rows. Instances passed in
(``Account``, ``Transfer``, ``Hold``) are used for their primary key only;
the ``Account`` instances passed get the balance, held amount and status
written to their rows.

Each operation runs inside ``transaction.atomic()``: its own transaction
when called on its own, a savepoint inside the caller's, so that the
caller's rollback undoes it too. A refusal raises an ``AccountException``
subclass and leaves nothing written.

Each operation runs again from the start when the database aborts it for a
concurrent change (a Galera certification conflict, a serialization
failure), up to ``ACCOUNTS_RETRY_ATTEMPTS`` times when it owns its
transaction; inside the caller's it raises ``RetryableConflict``: see
``accounts.retry``.

Import everything from ``accounts.facade``. The functions are written in
modules by role (``transfers``: transfer, reverse, repay; ``batches``;
``holds``; ``status``: freeze, thaw, close, expiry), sharing the checks
of ``_calls``; those modules are not part of the API.
"""

from __future__ import annotations

from ..expiry import Expiry
from .batches import TransferRequest, reverse_batch, transfer_many
from .holds import capture, expire_hold, hold, release
from .status import change_status, close, expire_account, freeze, thaw
from .transfers import repay, reverse, transfer

__all__ = [
    "transfer",
    "transfer_many",
    "TransferRequest",
    "reverse",
    "reverse_batch",
    "repay",
    "hold",
    "capture",
    "release",
    "freeze",
    "thaw",
    "close",
    "change_status",
    "expire_hold",
    "expire_account",
    "Expiry",
]
