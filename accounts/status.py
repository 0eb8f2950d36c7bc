"""
Freezing, thawing and closing an account, on the locked path.

The one rule for status writes: an account's status changes only here
(``facade.freeze``, ``facade.thaw``, ``facade.close`` and the
``Account.freeze()``, ``thaw()`` and ``close()`` methods that call them),
checked on the locked row. ``Account.save()`` and
``Account.objects.update()`` refuse a changed status (``LedgerImmutable``)
and write nothing, so a stale instance can never undo a freeze, and nothing
closes an account that still holds money.
"""

from __future__ import annotations

from . import posting, rules
from .models import Account


def change(using: str, account_id: int, status: str) -> Account:
    """Move an account to ``status`` under its lock; return the locked row as written.

    Setting the status an account already has writes nothing. Raises
    ``ProtectedAccount``, ``ClosedAccount`` or ``AccountNotEmpty`` (see
    ``accounts.rules.check_status_change``).
    """
    with posting.locked(using, [account_id]) as lock:
        locked = lock.rows[account_id]
        if rules.check_status_change(locked, status):
            posting.write_accounts(using, {account_id: {"status": status}})
            locked.status = status
    return locked
