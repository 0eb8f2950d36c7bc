"""
The locked path: the one way into the ledger, and the only code that writes it.

Every operation (``accounts.transfers``, ``accounts.holds``,
``accounts.status``, ``accounts.expiry``) runs inside :func:`locked`, which

1. opens ``transaction.atomic()`` (a savepoint inside the caller's
   transaction, so the caller's rollback undoes the operation too);
2. locks the accounts the operation touches with one ``SELECT ... FOR
   UPDATE ... ORDER BY id``, re-reading them, and reads the database's
   clock once the locks are granted (``accounts.sql``, ``accounts.clock``);

and then decides on those rows (``accounts.rules``) and writes through
:func:`write_transfer` (the one writer of transfers and their legs),
:func:`write_hold`, :func:`resolve_holds` or :func:`write_accounts`. Holds
are locked after their accounts (:func:`locked_holds`), never before, so
the locks are always taken in the same order.

Receivers hear of what was written once the outermost transaction commits
(:func:`after_commit`); the ``Account`` instances a caller passed get what
was written to their rows (:func:`update_instances`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils.translation import gettext_lazy as _

from . import limits, signals, sql
from .amounts import raw
from .exceptions import InvalidAccount
from .limits import Limits
from .models import Account, Hold, Transfer
from .rules import check_storable
from .sql.base import built

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .idempotency import Request

logger = logging.getLogger("accounts.facade")


@dataclass(frozen=True)
class Order:
    """What a caller asks the engine to move (or reserve), its arguments checked.

    The facade builds it (``accounts.facade``); the engine's operations
    (``transfers.post``, ``holds.place``, ``repayments.repay``) take it.
    ``value=None``: a reversal of what is left of its parent. The ``Account``
    instances in ``instances`` get their rows' new balances.
    """

    source_id: int
    destination_id: int
    value: Decimal | None
    currency: str | None
    user: Any = None
    merchant_reference: str | None = None
    description: str = ""
    instances: tuple[Any, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    effective_at: datetime | None = None

    @property
    def accounts(self) -> list[int]:
        """The two accounts' primary keys, source first."""
        return [self.source_id, self.destination_id]

    @property
    def amount(self) -> Decimal:
        """The value of an order for an amount (all but a reversal of what is left)."""
        assert self.value is not None
        return self.value


@dataclass(frozen=True)
class Locked:
    """What :func:`locked` read: the accounts by primary key, and the database's time.

    ``limits``: each account's spending limits by period, when asked for.
    """

    rows: dict[int, Account]
    now: datetime
    limits: dict[int, Limits]

    def pair(self, order: Order) -> tuple[Account, Account]:
        """The order's source and destination rows."""
        return self.rows[order.source_id], self.rows[order.destination_id]


@contextmanager
def locked(
    using: str,
    account_ids: Iterable[int],
    *,
    nowait: bool = False,
    limits: bool | Collection[int] = False,
    prepare: bool = False,
) -> Iterator[Locked]:
    """Open the atomic block and lock the accounts, in primary-key order.

    ``nowait=True`` fails at once (a ``DatabaseError`` that
    ``accounts.sql.locks_busy`` recognises) instead of waiting for a row
    another transaction holds: the sweeps use it for every item but the
    first of a batch, so that they never wait while holding locks.
    ``limits=True`` reads the accounts' spending limits in the same
    statement (operations that debit); a collection of keys reads only
    those accounts' (the ones debited). ``prepare``: see
    ``accounts.sql.lock_accounts``. Raises ``InvalidAccount`` if an account
    does not exist.
    """
    ids = list(account_ids)
    with transaction.atomic(using=using):
        rows, now, found = sql.lock_accounts(
            using, ids, nowait=nowait, limits=limits, prepare=prepare
        )
        missing = set(ids) - rows.keys()
        if missing:
            raise InvalidAccount(
                _("Account %(account)s does not exist (was it deleted?)."),
                account=min(missing),
            )
        yield Locked(rows, now, found)


def locked_holds(using: str, *, nowait: bool = False) -> QuerySet[Hold]:
    """Holds read ``FOR UPDATE``: call once their accounts are locked."""
    return Hold.objects.using(using).select_for_update(nowait=nowait)


def amount(row: Any, name: str) -> Decimal:
    """A locked row's stored amount (balance, held, a hold's amount) as a plain Decimal."""
    value = raw(row, name)
    assert value is not None
    return value


def credit_limit(row: Account) -> Decimal | None:
    """A locked account's credit limit as a plain Decimal; ``None``: no limit."""
    return raw(row, "credit_limit")


def new_transfer(**values: Any) -> Transfer:
    """An unsaved ``Transfer`` from its columns' values (by attribute name; others ``None``).

    Built without ``Model.__init__`` (``sql.base.built``): the write path
    builds one per transfer, hundreds for a batch.
    """
    assert values.keys() <= _NO_VALUES.keys(), values.keys() - _NO_VALUES.keys()
    transfer = built(Transfer, _NO_VALUES)
    transfer.__dict__.update(values)
    return transfer


#: Every column of a transfer, by attribute name, not set yet.
_NO_VALUES = dict.fromkeys(f.attname for f in Transfer._meta.concrete_fields)


# Writing -------------------------------------------------------------------------


def write_transfer(
    using: str,
    src: Account,
    dst: Account,
    value: Decimal,
    now: datetime,
    *,
    parent: Transfer | None = None,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str = "",
    key: str | None = None,
    fingerprint: str | None = None,
    source_columns: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    effective_at: datetime | None = None,
) -> Transfer:
    """Write a transfer, its two legs and both balances. Call only inside :func:`locked`.

    ``src`` and ``dst`` are the locked rows; their ``balance`` (and the
    source's other ``source_columns``, e.g. ``held``, written in the same
    statement) are updated in memory to what was written. The rows are
    stamped with ``now``, the database's time read under the lock, so on
    each account ``created`` follows the posting order; ``effective_at``
    defaults to it (the caller checked a given one is not later:
    ``arguments.check_effective_at``).
    """
    new_source = amount(src, "balance") - value
    new_destination = amount(dst, "balance") + value
    check_storable(new_source, value)
    check_storable(new_destination, value)
    posted = Transfer(
        source_id=src.pk,
        destination_id=dst.pk,
        currency=src.currency,
        amount=value,
        merchant_reference=merchant_reference,
        description=description,
        user_id=user.pk if user is not None else None,
        username=username(user),
        idempotency_key=key,
        request_fingerprint=fingerprint,
        created=now,
        effective_at=effective_at or now,
        metadata=metadata or {},
    )
    if parent is not None:
        posted.parent = parent
    if user is not None:
        posted.user = user
    # The usage of spending limits the operation changed is written too.
    source_row: dict[str, Any] = {
        **(source_columns or {}),
        **limits.changed(src),
        "balance": new_source,
    }
    destination_row: dict[str, Any] = {**limits.changed(dst), "balance": new_destination}
    sql.write_transfer(
        using,
        posted,
        # The legs of a transfer sum to zero; each records its account's new balance.
        [
            (src.pk, src.currency, -value, new_source, now),
            (dst.pk, src.currency, value, new_destination, now),
        ],
        {src.pk: source_row, dst.pk: destination_row},
    )
    src.__dict__.update(source_row)
    dst.__dict__["balance"] = new_destination
    after_commit(using, signals.transfer_posted, Transfer, transfer=posted)
    return posted


def write_hold(using: str, src: Account, placed: Hold) -> None:
    """Insert a new hold and add its amount to the locked source's ``held``.

    The caller counted it against the spending limits (``accounts.limits.spend``).
    """
    held = amount(src, "held") + amount(placed, "amount")
    check_storable(held)
    sql.insert(using, placed)
    write_accounts(using, {src.pk: {"held": held, **limits.changed(src)}})
    src.__dict__["held"] = held
    after_commit(using, signals.hold_created, Hold, hold=placed)


def write_accounts(using: str, rows: dict[int, dict[str, Any]]) -> None:
    """Set columns of locked accounts (held amounts, a status) in one ``UPDATE``."""
    sql.write_ledger_fields(using, rows)


def resolve_holds(
    using: str,
    holds: list[Hold],
    status: str,
    user: Any,
    now: datetime,
    *,
    capture: Transfer | None = None,
) -> None:
    """Record how locked active holds were resolved (one statement), and tell receivers.

    The caller writes the source's ``held`` (with its other changes).
    """
    columns: dict[str, Any] = {
        "status": status,
        "resolved_at": now,
        "resolved_by": username(user),
    }
    if capture is not None:
        columns["capture"] = capture
    Hold.objects.using(using)._resolve([h.pk for h in holds], **columns)
    for resolved in holds:
        for name, value in columns.items():
            setattr(resolved, name, value)
        after_commit(using, signals.hold_resolved, Hold, hold=resolved)


def free_holds(
    using: str, src: Account, holds: list[Hold], status: str, user: Any, now: datetime
) -> None:
    """Release or expire locked active holds: give their amounts back to the source.

    What they had counted against the spending limits is given back to the
    periods they were placed in that are still running.
    """
    held = amount(src, "held") - sum((amount(h, "amount") for h in holds), Decimal(0))
    for hold in holds:
        limits.give_back(src, amount(hold, "amount"), hold.created, now)
    write_accounts(using, {src.pk: {"held": held, **limits.changed(src)}})
    src.__dict__["held"] = held
    resolve_holds(using, holds, status, user, now)


def lapse_holds(
    using: str, src: Account, now: datetime, *, past_expiry: bool, nowait: bool = False
) -> int:
    """Mark a locked account's active holds expired: all of them, or those past expiry.

    Lowers the account's ``held`` and gives back what they counted against
    its spending limits, in memory (the caller writes both with its other
    changes: ``limits.changed``), and returns how many lapsed. No query when
    nothing is held.
    """
    if not amount(src, "held"):
        return 0
    holds = locked_holds(using, nowait=nowait).filter(source=src.pk, status=Hold.Status.ACTIVE)
    if past_expiry:
        holds = holds.filter(expires_at__lte=now)
    lapsed = list(holds.order_by("pk"))
    if lapsed:
        freed = sum((amount(h, "amount") for h in lapsed), Decimal(0))
        src.__dict__["held"] = amount(src, "held") - freed
        for hold in lapsed:
            limits.give_back(src, amount(hold, "amount"), hold.created, now)
        resolve_holds(using, lapsed, Hold.Status.EXPIRED, None, now)
    return len(lapsed)


# After the write ---------------------------------------------------------------------


def after_commit(using: str, signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` once the outermost transaction commits, to every receiver.

    ``send_robust``: a receiver that raises is logged, and the receivers
    after it still run (the money has moved; each of them must hear of it).
    """

    after_commit_all(using, [(signal, sender, kwargs)])


def after_commit_all(using: str, sends: list[tuple[Signal, type, dict[str, Any]]]) -> None:
    """:func:`after_commit` for each ``(signal, sender, kwargs)``, in order, in one callback."""

    def send() -> None:
        for signal, sender, kwargs in sends:
            for receiver, result in signal.send_robust(sender=sender, **kwargs):
                if isinstance(result, Exception):
                    logger.error(
                        "%s receiver %r raised", sender.__name__, receiver, exc_info=result
                    )

    transaction.on_commit(send, using=using)


def after_commit_resolved(using: str, hold_ids: list[int]) -> None:
    """Send ``hold_resolved`` for holds resolved in SQL, loading them once committed.

    Loaded in the commit callback, not before: nothing the caller waits for
    can fail after the money has moved.
    """

    def send() -> None:
        try:
            resolved = list(Hold.objects.using(using).filter(pk__in=hold_ids).order_by("pk"))
        except DatabaseError:
            logger.exception("Could not load holds %s to report them resolved", hold_ids)
            return
        for hold in resolved:
            for receiver, result in signals.hold_resolved.send_robust(sender=Hold, hold=hold):
                if isinstance(result, Exception):
                    logger.error("Hold receiver %r raised", receiver, exc_info=result)

    transaction.on_commit(send, using=using)


def update_instances(rows: dict[int, Account], *instances: Any) -> None:
    """Give the ``Account`` instances the caller passed what was written to their rows."""
    for instance in instances:
        if isinstance(instance, Account) and instance.pk in rows:
            row = rows[instance.pk]
            instance.__dict__["balance"] = amount(row, "balance")
            instance.__dict__["held"] = amount(row, "held")
            instance.__dict__["status"] = row.status
            for name in limits.USAGE_COLUMNS:
                instance.__dict__[name] = row.__dict__.get(name)
            instance._remember(["balance", "held", "status", *limits.USAGE_COLUMNS])


def recorded(request: Request, user: Any, now: datetime) -> dict[str, Any]:
    """The columns that say who asked for a new ledger row, with which key, and when."""
    return {
        "user": user,
        "username": username(user),
        "idempotency_key": request.key,
        "request_fingerprint": request.fingerprint(),
        "created": now,
    }


def username(user: AbstractBaseUser | None) -> str:
    """The username recorded next to a ledger row (kept when the user is deleted)."""
    return user.get_username() if user is not None else ""
