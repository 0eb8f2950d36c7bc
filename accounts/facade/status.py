"""
An account's status: freeze, thaw and close it, and close it when it expires.
"""

from __future__ import annotations

from datetime import datetime

from django.db import router
from django.utils.translation import gettext_lazy as _

from .. import arguments, expiry, posting, status
from ..exceptions import InvalidArgument
from ..expiry import Expiry
from ..models import Account
from ..retry import retry_on_conflict


def freeze(account: Account) -> None:
    """Freeze an account: no money moves in or out until it is thawed.

    Raises ``ClosedAccount`` (a closed account stays closed) and
    ``ProtectedAccount`` (core accounts).
    """
    change_status(account, Account.Status.FROZEN)


def thaw(account: Account) -> None:
    """Open a frozen account again; a closed account stays closed (``ClosedAccount``)."""
    change_status(account, Account.Status.OPEN)


def close(account: Account) -> None:
    """Close an account for good.

    Refused with ``AccountNotEmpty`` unless its balance is zero and nothing
    is held, checked on the locked row, so a transfer committing at the same
    moment cannot leave money on a closed account. Raises ``ProtectedAccount``
    for a core account. Closing a closed account does nothing.
    """
    change_status(account, Account.Status.CLOSED)


@retry_on_conflict
def change_status(account: Account, new_status: str) -> None:
    """Move an account to ``new_status`` (an ``Account.Status``), checked on its locked row.

    The one way an account's status changes; :func:`freeze`, :func:`thaw`
    and :func:`close` call it. The instance gets the status, balance and
    held amount of its row. Raises ``InvalidArgument`` for an unknown status.
    """
    account_id = arguments.saved_pk(account, Account, _("account"))
    if new_status not in Account.Status.values:
        raise InvalidArgument(
            _("Unknown account status %(status)r: use one of %(choices)s."),
            status=new_status,
            choices=", ".join(Account.Status.values),
        )
    # Not the instance's database: an account read from a replica is changed
    # where the router writes.
    locked = status.change(router.db_for_write(Account), account_id, new_status)
    posting.update_instances({account_id: locked}, account)


@retry_on_conflict
def expire_account(
    account: Account | int,
    *,
    now: datetime | None = None,
    description: str | None = None,
    sink: Account | None = None,
) -> Expiry:
    """Close one account whose end date has passed, sweeping its money to the expired account.

    Under the account's lock and in one atomic block: active holds on it
    lapse (nothing can capture them any more), a positive balance moves to
    the expired core account of its currency (the one transfer allowed out of
    an account past its end date, recorded with ``user=None``), and the
    account is closed. A negative balance is left, and the account open, so
    the debt stays visible (its holds lapse all the same). A frozen, closed
    or core account, or one whose end date is no longer past the cut-off, is
    left untouched. The cut-off is ``now``, but never later than the
    database's clock under the lock. Used by
    ``accounts.expiry.close_expired_accounts``; safe to call concurrently
    (each account is swept once). ``sink``, the expired core account of the
    account's currency, saves a query when the caller already has it (only
    its primary key is used; it is checked under the lock).
    """
    description = arguments.text(description, _("Description"), None)
    return expiry.expire_account(account, now=now, description=description, sink=sink)
