"""
The public write API of the ledger: ``transfer``, ``reverse``, ``hold``,
``capture`` and ``release``.

Every change to balances and held amounts goes through :func:`_locked`, the
one locked, atomic way in. Each operation

1. refuses bad input before touching the database (nothing is written);
2. opens ``transaction.atomic()`` and locks the account rows it touches, in
   primary-key order (``AccountQuerySet.locked``), re-reading them, so every
   check runs on the committed state, never on the caller's possibly stale
   instances;
3. checks currency, status, dates, funds and the operation's own rules;
4. writes the transfer and its two legs (:func:`_write_transfer`, the only
   code that creates them) or the hold, and the new balances / held amounts.

The atomic block becomes a savepoint when the caller already has a
transaction open: if the caller rolls back, the operation is rolled back
with it.

Each public function runs again from the start when the database aborts it
for a concurrent change (a Galera certification conflict, a serialization
failure): see ``accounts.retry``.

Invariants protected here:

* the legs of a transfer sum to zero, and each records its account's new
  balance, written under the same lock as the balance;
* for an account with a credit limit, ``balance − held ≥ −credit_limit``
  after every debit and every new hold (holds past their expiry no longer
  count as held);
* a transfer is reversed at most by its own amount; a hold resolves once.

Rejected alternatives:

* ``UPDATE ... SET balance = balance - x WHERE balance - x >= -limit`` with no
  read: one statement fewer, but the leg's ``balance_after`` would need a
  second read, and the status and date checks would still race.
* Recomputing the balance as ``SUM(amount)`` of the account's legs: the cost
  grows with the history, and without a lock it still races.
* ``SELECT ... FOR UPDATE`` of each account in its own statement: same
  guarantees, one more round trip. A single ``ORDER BY pk`` locking read
  takes the locks in key order on PostgreSQL and InnoDB alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, signals, sql
from .conf import conf
from .exceptions import (
    AccountExpired,
    AccountNotEmpty,
    AccountNotYetActive,
    CaptureExceedsHold,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    HoldExpired,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidArgument,
    InvalidReversal,
    ProtectedAccount,
    SameAccount,
)
from .managers import posting
from .models import Account, Hold, Transfer
from .retry import retry_on_conflict

logger = logging.getLogger(__name__)

__all__ = ["transfer", "reverse", "hold", "capture", "release"]


@retry_on_conflict
def transfer(
    source: Account,
    destination: Account,
    amount: Any,
    *,
    parent: Transfer | None = None,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    allow_partial: bool = False,
) -> Transfer:
    """Move ``amount`` from ``source`` to ``destination`` and return the ``Transfer``.

    ``amount`` is a ``Money`` or a ``Decimal`` (in the accounts' currency).
    ``parent`` makes the transfer a reversal of that transfer (see
    :func:`reverse`, which is usually what you want). ``user`` is recorded
    (with a username snapshot) but not checked: deciding who may move money
    is the caller's job. With an ``idempotency_key``, repeating the call with
    the same source, destination and amount returns the original transfer
    and writes nothing. With ``allow_partial=True`` the transfer moves as
    much of ``amount`` as the source can cover right now (at least one minor
    unit) and records what it moved.

    On success the instances passed in get their new ``balance``. The
    ``transfer_posted`` signal is sent once the outermost transaction commits.

    Raises ``InvalidAmount``, ``InvalidAccount``, ``SameAccount``,
    ``InvalidArgument``, ``CurrencyMismatch``, ``ClosedAccount``,
    ``FrozenAccount``, ``AccountExpired``, ``AccountNotYetActive``,
    ``InsufficientFunds``, ``InvalidReversal`` (with ``parent``) and
    ``IdempotencyConflict``; all subclass ``AccountException``, and none
    leaves anything written.
    """
    if allow_partial and parent is not None:
        raise InvalidArgument(_("A reversal cannot be partial-by-funds (allow_partial)."))
    return _post(
        source,
        destination,
        amount,
        parent=parent,
        user=user,
        merchant_reference=merchant_reference,
        description=description,
        idempotency_key=idempotency_key,
        allow_partial=bool(allow_partial),
    )


@retry_on_conflict
def reverse(
    transfer: Transfer,
    *,
    amount: Any = None,
    user: Any = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Transfer:
    """Move (part of) a transfer's amount back, from its destination to its source.

    ``amount=None`` reverses whatever has not been reversed yet. Partial
    reversals are allowed until the original is fully reversed. The reversal
    is a transfer with ``parent`` set to the original; the same account
    rules apply (the money must still be on the destination, both accounts
    usable). ``merchant_reference`` defaults to the original's.

    Raises ``InvalidReversal`` when the transfer is itself a reversal, is
    already fully reversed, or ``amount`` exceeds what is left (also when two
    reversals race), and every error :func:`transfer` raises.
    """
    if not isinstance(transfer, Transfer) or transfer.pk is None:
        raise InvalidArgument(_("%(parent)r is not a saved transfer."), parent=transfer)
    return _post(
        transfer.destination_id,
        transfer.source_id,
        amount,
        parent=transfer,
        user=user,
        merchant_reference=(
            transfer.merchant_reference if merchant_reference is None else merchant_reference
        ),
        description=description,
        idempotency_key=idempotency_key,
    )


@retry_on_conflict
def hold(
    source: Account,
    destination: Account,
    amount: Any,
    *,
    expires_at: datetime | None = None,
    merchant_reference: str | None = None,
    description: str | None = None,
    user: Any = None,
    idempotency_key: str | None = None,
) -> Hold:
    """Reserve ``amount`` on ``source`` for a later capture to ``destination``.

    The source's balance does not change, but the amount available to every
    other debit (transfers and new holds) drops at once. From
    ``expires_at`` (an aware datetime; ``None``: never) the hold no longer
    reserves anything and cannot be captured. With an ``idempotency_key``,
    repeating the call with the same details returns the original hold.

    Raises the same errors as :func:`transfer` (``InsufficientFunds`` when the
    source cannot cover it), and ``InvalidArgument`` for an ``expires_at``
    that is not a future aware datetime.
    """
    source_id = _account_id(source, _("source"))
    destination_id = _account_id(destination, _("destination"))
    if source_id == destination_id:
        raise SameAccount(account=source)
    value, currency = amounts.parse_amount(amount)
    key = _text(idempotency_key, _("Idempotency key"), 128, allow_empty=False)
    merchant_reference = _text(merchant_reference, _("Merchant reference"), 128)
    description = _text(description, _("Description"), None) or ""
    now = timezone.now()
    if expires_at is not None and (
        not isinstance(expires_at, datetime) or timezone.is_naive(expires_at) or expires_at <= now
    ):
        raise InvalidArgument(
            _("expires_at %(expires_at)r must be an aware datetime in the future, or None."),
            expires_at=expires_at,
        )
    using = router.db_for_write(Hold)
    try:
        with _locked(using, [source_id, destination_id]) as rows:
            src, dst = rows[source_id], rows[destination_id]
            if key is not None:
                existing = Hold.objects.using(using).filter(idempotency_key=key).first()
                if existing is not None:
                    return _replay_hold(existing, key, source_id, destination_id, value, currency)
            _check_pair(src, dst, currency, now)
            amounts.check_places(value, src.currency)
            _check_funds(using, src, value, now)
            if src.role == Account.Role.SOURCE:
                _check_initial_value(dst, value, dst.balance.amount + value)
            placed = Hold(
                source_id=source_id,
                destination_id=destination_id,
                currency=src.currency,
                amount=value,
                expires_at=expires_at,
                merchant_reference=merchant_reference,
                description=description,
                user=_saved_user(user),
                username=_username(user),
                idempotency_key=key,
                created=now,
            )
            sql.insert(using, placed)
            held = src.held.amount + value
            sql.write_ledger_fields(using, {source_id: {"held": held}})
            _on_commit(using, signals.hold_created, Hold, hold=placed)
    except IntegrityError as error:
        existing = _after_key_race(Hold, using, key, error)
        return _replay_hold(existing, key, source_id, destination_id, value, currency)
    if isinstance(source, Account):
        source.__dict__["held"] = held
    return placed


@retry_on_conflict
def capture(
    hold: Hold,
    amount: Any = None,
    *,
    user: Any = None,
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Transfer:
    """Turn an active hold into a transfer of ``amount`` (default: all of it).

    Capturing less than the hold is a partial capture: the remainder is
    released at once. The capture never fails for lack of funds (the hold
    reserved them), but both accounts must still be usable (not closed,
    frozen or outside their dates). The transfer carries the hold's
    merchant reference. With an ``idempotency_key``, repeating the capture
    returns the same transfer.

    Raises ``HoldResolved`` (already captured, released or expired),
    ``HoldExpired`` (past ``expires_at``), ``CaptureExceedsHold``,
    ``InvalidAmount``, ``CurrencyMismatch``, ``InactiveAccount`` subclasses
    and ``IdempotencyConflict``.
    """
    _check_hold(hold)
    value, currency = (None, None) if amount is None else amounts.parse_amount(amount)
    key = _text(idempotency_key, _("Idempotency key"), 128, allow_empty=False)
    description = _text(description, _("Description"), None)
    using = router.db_for_write(Hold)
    try:
        with _locked(using, [hold.source_id, hold.destination_id]) as rows:
            locked = _locked_holds(using).get(pk=hold.pk)
            src, dst = rows[locked.source_id], rows[locked.destination_id]
            if key is not None:
                existing = Transfer.objects.using(using).filter(idempotency_key=key).first()
                if existing is not None:
                    return _replay_capture(existing, key, locked, value)
            now = timezone.now()
            if locked.status != Hold.Status.ACTIVE:
                raise HoldResolved(hold=locked, status=locked.get_status_display().lower())
            if locked.is_expired(now):
                raise HoldExpired(hold=locked, expires_at=locked.expires_at)
            amounts.check_same_currency(currency, locked.currency, what=_("The amount"))
            value = locked.amount.amount if value is None else value
            amounts.check_places(value, locked.currency)
            if value > locked.amount.amount:
                raise CaptureExceedsHold(
                    hold=locked,
                    amount=amounts.money(value, locked.currency),
                    held=locked.amount,
                )
            _check_pair(src, dst, None, now)
            # No funds check: the hold kept this money out of every other
            # debit since it was placed, so balance − held stays within the
            # credit limit when the hold turns into a transfer.
            if src.role == Account.Role.SOURCE:
                _check_initial_value(dst, value, dst.balance.amount + value)
            captured = _write_transfer(
                using,
                src,
                dst,
                value,
                parent=None,
                user=user,
                merchant_reference=locked.merchant_reference,
                description=locked.description if description is None else description,
                key=key,
                source_columns={"held": src.held.amount - locked.amount.amount},
            )
            _resolve(using, locked, Hold.Status.CAPTURED, user, capture=captured)
    except IntegrityError as error:
        existing = _after_key_race(Transfer, using, key, error)
        return _replay_capture(existing, key, Hold.objects.using(using).get(pk=hold.pk), value)
    _copy_resolution(locked, hold)
    return captured


@retry_on_conflict
def release(hold: Hold, *, user: Any = None) -> Hold:
    """Free the money an active hold reserves, without moving any.

    A hold past its expiry that the sweep has not yet marked can still be
    released. Raises ``HoldResolved`` if the hold was already captured,
    released or expired.
    """
    _check_hold(hold)
    using = router.db_for_write(Hold)
    with _locked(using, [hold.source_id]) as rows:
        locked = _locked_holds(using).get(pk=hold.pk)
        if locked.status != Hold.Status.ACTIVE:
            raise HoldResolved(hold=locked, status=locked.get_status_display().lower())
        _free(using, rows[locked.source_id], locked, Hold.Status.RELEASED, user)
    _copy_resolution(locked, hold)
    return hold


@retry_on_conflict
def expire_hold(hold: Hold, *, now: datetime | None = None) -> bool:
    """Mark one hold past its expiry as expired and free what it reserved.

    Returns False (and changes nothing) if the hold is no longer active or
    not yet past its expiry when checked under the lock, so two sweeps
    running at once expire each hold once. Used by
    ``accounts.expiry.release_expired_holds``.
    """
    _check_hold(hold)
    now = now or timezone.now()
    using = router.db_for_write(Hold)
    with _locked(using, [hold.source_id]) as rows:
        locked = _locked_holds(using).get(pk=hold.pk)
        if locked.status != Hold.Status.ACTIVE or not locked.is_expired(now):
            return False
        _free(using, rows[locked.source_id], locked, Hold.Status.EXPIRED, None)
    _copy_resolution(locked, hold)
    return True


@retry_on_conflict
def change_status(account: Account, status: str) -> None:
    """Freeze, thaw or close an account, checked on its locked row.

    Called by ``Account.freeze()``, ``thaw()`` and ``close()``. Closing
    refuses a non-zero balance or active holds (``AccountNotEmpty``); a
    closed account stays closed (``ClosedAccount``); core accounts cannot
    change (``ProtectedAccount``). Setting the status an account already has
    does nothing.
    """
    if not isinstance(account, Account) or account.pk is None:
        raise InvalidAccount(account=account)
    if status not in Account.Status.values:
        raise InvalidArgument(
            _("Unknown account status %(status)r: use one of %(choices)s."),
            status=status,
            choices=", ".join(Account.Status.values),
        )
    # Not the instance's database: one loaded from a read replica is still
    # changed on the database the ledger writes to.
    using = router.db_for_write(Account)
    with _locked(using, [account.pk]) as rows:
        locked = rows[account.pk]
        if locked.is_core:
            action = Account.Status(status).label.lower()
            raise ProtectedAccount(account=locked, action=action)
        if locked.status == status:
            pass
        elif locked.is_closed():
            raise ClosedAccount(account=locked)
        elif status == Account.Status.CLOSED and locked.balance.amount != 0:
            raise AccountNotEmpty(account=locked, balance=locked.balance)
        elif status == Account.Status.CLOSED and locked.held.amount != 0:
            raise AccountNotEmpty(
                _(
                    "Account %(account)s cannot be closed: %(held)s is held by active "
                    "holds. Capture or release them first."
                ),
                account=locked,
                held=locked.held,
            )
        else:
            sql.write_ledger_fields(using, {account.pk: {"status": status}})
    account.status = account._loaded_status = status
    account.__dict__["balance"] = locked.balance.amount
    account.__dict__["held"] = locked.held.amount


@dataclass(frozen=True)
class Expiry:
    """What :func:`expire_account` did with one account."""

    #: "swept" (balance moved, closed), "closed" (zero balance, closed),
    #: "debt" (negative balance: left open), "frozen" (left alone), or
    #: "skipped" (closed, core or no longer expired when checked under the lock).
    outcome: str
    #: The balance moved ("swept") or owed ("debt").
    amount: Any = None
    #: Active holds that lapsed with the account.
    holds_expired: int = 0
    transfer: Transfer | None = None


@retry_on_conflict
def expire_account(
    account: Account,
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
    the debt stays visible. A frozen, closed or core account, or one whose
    end date is no longer past ``now``, is left untouched. Used by
    ``accounts.expiry.close_expired_accounts``; safe to call concurrently
    (each account is swept once). ``sink``, the expired core account of the
    account's currency, saves a query when the caller already has it.
    """
    account_id = _account_id(account, _("expired"))
    now = now or timezone.now()
    using = router.db_for_write(Account)
    currency = (
        account.currency
        if isinstance(account, Account)
        else Account.objects.using(using).values_list("currency", flat=True).get(pk=account_id)
    )
    if sink is None or sink.currency != currency:
        sink = Account.objects.db_manager(using).expired_account(currency)
    with _locked(using, [account_id, sink.pk]) as rows:
        locked, sink = rows[account_id], rows[sink.pk]
        if (
            locked.is_core
            or locked.status == Account.Status.CLOSED
            or locked.currency != sink.currency
            or not (locked.end_date and locked.end_date < now)
        ):
            return Expiry("skipped")
        if locked.status == Account.Status.FROZEN:
            return Expiry("frozen")
        if locked.balance.amount < 0:
            return Expiry("debt", amount=locked.balance)
        lapsed = _lapse_holds(using, locked)
        balance = locked.balance.amount
        closed = {"status": Account.Status.CLOSED}
        swept = None
        if balance > 0:
            _check_pair(locked, sink, None, now, skip_window=True)
            # The sweep and the close are one statement: the account's row
            # gets its zero balance and its closed status together.
            swept = _write_transfer(
                using,
                locked,
                sink,
                balance,
                parent=None,
                user=None,
                merchant_reference=None,
                description=description
                or str(
                    _("Balance of expired account %(account)s (expired %(end)s)")
                    % {"account": locked, "end": locked.end_date.isoformat()}
                ),
                key=None,
                source_columns=closed,
            )
        else:
            sql.write_ledger_fields(using, {account_id: closed})
    if isinstance(account, Account):
        account.status = account._loaded_status = Account.Status.CLOSED
        account.__dict__["balance"] = locked.balance.amount
        account.__dict__["held"] = locked.held.amount
    if swept is None:
        return Expiry("closed", holds_expired=lapsed)
    return Expiry(
        "swept", amount=amounts.money(balance, currency), holds_expired=lapsed, transfer=swept
    )


def _lapse_holds(using: str, locked: Account) -> int:
    """Expire every active hold on a locked account; return how many."""
    if not locked.held.amount:
        return 0
    holds = list(_locked_holds(using).filter(source=locked.pk, status="active"))
    for active in holds:
        _resolve(using, active, Hold.Status.EXPIRED, None)
    sql.write_ledger_fields(using, {locked.pk: {"held": Decimal(0)}})
    locked.__dict__["held"] = Decimal(0)
    return len(holds)


# The write path ---------------------------------------------------------------


def _locked_holds(using: str) -> Any:
    """Holds to read ``FOR UPDATE``, once their accounts are locked (``NOWAIT`` in the sweeps)."""
    return Hold.objects.using(using).select_for_update(nowait=sql.nowait.get())


@contextmanager
def _locked(using: str, account_ids: Iterable[int]) -> Iterator[dict[int, Account]]:
    """Open the atomic block, allow ledger writes and lock the accounts, in pk order.

    The only way into the ledger: every operation above runs inside it.
    Raises ``InvalidAccount`` if an account does not exist.
    """
    ids = list(account_ids)
    with transaction.atomic(using=using):
        token = posting.set(True)
        try:
            rows = sql.lock_accounts(using, ids)
            missing = set(ids) - rows.keys()
            if missing:
                raise InvalidAccount(
                    _("Account %(account)s does not exist (was it deleted?)."),
                    account=min(missing),
                )
            yield rows
        finally:
            posting.reset(token)


def _post(
    source: Any,
    destination: Any,
    amount: Any,
    *,
    parent: Transfer | None,
    user: Any,
    merchant_reference: str | None,
    description: str | None,
    idempotency_key: str | None,
    allow_partial: bool = False,
) -> Transfer:
    """Post one transfer (or reversal, with ``parent``).

    ``amount=None`` is accepted for reversals only (reverse what is left).
    """
    source_id = _account_id(source, _("source"))
    destination_id = _account_id(destination, _("destination"))
    if source_id == destination_id:
        raise SameAccount(account=source)
    if amount is None and parent is not None:
        value, currency = None, None  # a reversal of whatever is left
    else:
        value, currency = amounts.parse_amount(amount)
    if parent is not None:
        _check_reversal_shape(parent, source_id, destination_id)
    key = _text(idempotency_key, _("Idempotency key"), 128, allow_empty=False)
    merchant_reference = _text(merchant_reference, _("Merchant reference"), 128)
    description = _text(description, _("Description"), None) or ""

    using = router.db_for_write(Transfer)
    try:
        with _locked(using, [source_id, destination_id]) as rows:
            src, dst = rows[source_id], rows[destination_id]
            if key is not None:
                existing = Transfer.objects.using(using).filter(idempotency_key=key).first()
                if existing is not None:
                    return _replay(
                        existing,
                        key,
                        source_id,
                        destination_id,
                        value,
                        currency,
                        parent,
                        allow_partial,
                    )
            now = timezone.now()
            _check_pair(src, dst, currency, now)
            if parent is not None:
                value = _check_reversal(using, parent, value)
            assert value is not None
            amounts.check_places(value, src.currency)
            value = _check_funds(using, src, value, now, allow_partial=allow_partial)
            if src.role == Account.Role.SOURCE and parent is None:
                _check_initial_value(dst, value, _amount(dst, "balance") + value)
            posted = _write_transfer(
                using,
                src,
                dst,
                value,
                parent=parent,
                user=user,
                merchant_reference=merchant_reference,
                description=description,
                key=key,
            )
    except IntegrityError as error:
        # A concurrent call with the same key committed first (the unique
        # index made this insert wait for it): answer as a repeat would.
        existing = _after_key_race(Transfer, using, key, error)
        return _replay(
            existing, key, source_id, destination_id, value, currency, parent, allow_partial
        )

    for instance in (source, destination):
        if isinstance(instance, Account):
            instance.__dict__["balance"] = _amount(rows[instance.pk], "balance")
    return posted


def _write_transfer(
    using: str,
    src: Account,
    dst: Account,
    value: Decimal,
    *,
    parent: Transfer | None,
    user: Any,
    merchant_reference: str | None,
    description: str,
    key: str | None,
    source_columns: dict[str, Any] | None = None,
) -> Transfer:
    """Write a transfer, its two legs and both balances. Call only inside :func:`_locked`.

    ``src`` and ``dst`` are the locked rows; their ``balance`` (and the
    source's other ``source_columns``, e.g. ``held``, written in the same
    statement) are updated in memory to what was written. The rows are
    stamped with the time of writing, taken under the lock, so on each
    account ``created`` follows the posting order (never a caller's "as of"
    time, which would misplace the rows in history).
    """
    now = timezone.now()
    new_source = _amount(src, "balance") - value
    new_destination = _amount(dst, "balance") + value
    if abs(new_source) >= amounts.LIMIT or abs(new_destination) >= amounts.LIMIT:
        raise InvalidAmount(
            _("Amount %(amount)s would take a balance beyond what the ledger stores."),
            amount=value,
        )
    posted = Transfer(
        source_id=src.pk,
        destination_id=dst.pk,
        currency=src.currency,
        amount=value,
        merchant_reference=merchant_reference,
        description=description,
        user_id=getattr(user, "pk", None),
        username=_username(user),
        idempotency_key=key,
        created=now,
    )
    if parent is not None:
        posted.parent = parent
    if posted.user_id is not None:
        posted.user = user
    source_row: dict[str, Any] = {**(source_columns or {}), "balance": new_source}
    sql.write_transfer(
        using,
        posted,
        # The legs of a transfer sum to zero; each records its account's new balance.
        [
            (src.pk, src.currency, -value, new_source, now),
            (dst.pk, src.currency, value, new_destination, now),
        ],
        {src.pk: source_row, dst.pk: {"balance": new_destination}},
    )
    src.__dict__.update(source_row)
    dst.__dict__["balance"] = new_destination
    _on_commit(using, signals.transfer_posted, Transfer, transfer=posted)
    return posted


def _free(using: str, src: Account, locked: Hold, status: str, user: Any) -> None:
    """Release or expire a locked active hold: give its amount back to the source."""
    held = src.held.amount - locked.amount.amount
    sql.write_ledger_fields(using, {src.pk: {"held": held}})
    src.__dict__["held"] = held
    _resolve(using, locked, status, user)


def _resolve(using: str, locked: Hold, status: str, user: Any, capture: Any = None) -> None:
    columns: dict[str, Any] = {
        "status": status,
        "resolved_at": timezone.now(),
        "resolved_by": _username(user),
    }
    if capture is not None:
        columns["capture"] = capture
    Hold.objects.using(using)._resolve(locked.pk, **columns)
    for name, value in columns.items():
        setattr(locked, name, value)
    _on_commit(using, signals.hold_resolved, Hold, hold=locked)


def _on_commit(using: str, signal: Any, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` once the transaction commits, to every receiver.

    ``send_robust``: a receiver that raises is logged, and the receivers
    after it still run (the money has moved; each of them must hear of it).
    """

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, **kwargs):
            if isinstance(result, Exception):
                logger.error("%s receiver %r raised", sender.__name__, receiver, exc_info=result)

    transaction.on_commit(send, using=using)


# Checks ---------------------------------------------------------------------------


def _check_pair(
    src: Account, dst: Account, currency: str | None, now: datetime, *, skip_window: bool = False
) -> None:
    """Both accounts share a currency (the amount's, if it has one) and can be used now.

    ``skip_window`` lets the expiry sweep take money out of an account past
    its end date; nothing else sets it.
    """
    if src.currency != dst.currency:
        raise CurrencyMismatch(
            _("Cannot transfer from %(source)s (%(scur)s) to %(destination)s (%(dcur)s)."),
            source=src,
            scur=src.currency,
            destination=dst,
            dcur=dst.currency,
        )
    amounts.check_same_currency(currency, src.currency, what=_("The amount"))
    _check_usable(src, now, skip_window=skip_window)
    _check_usable(dst, now, skip_window=False)


def _check_usable(account: Account, now: datetime, *, skip_window: bool) -> None:
    if account.status == Account.Status.CLOSED:
        raise ClosedAccount(account=account)
    if account.status == Account.Status.FROZEN:
        raise FrozenAccount(account=account)
    if skip_window:
        return
    if account.start_date and now < account.start_date:
        raise AccountNotYetActive(account=account, start_date=account.start_date)
    if account.end_date and now > account.end_date:
        raise AccountExpired(account=account, end_date=account.end_date)


def _check_funds(
    using: str, src: Account, value: Decimal, now: datetime, *, allow_partial: bool = False
) -> Decimal:
    """Return the amount to debit: ``value``, or with ``allow_partial`` what is available.

    Raises ``InsufficientFunds`` when the source cannot cover it.
    """
    if _amount(src, "credit_limit") is None:
        return value
    available = (
        _amount(src, "balance") + _amount(src, "credit_limit") - _effective_held(using, src, now)
    )
    if value <= available:
        return value
    if allow_partial and available > 0:
        return available
    raise InsufficientFunds(
        account=src,
        amount=amounts.money(value, src.currency),
        available=amounts.money(max(available, Decimal(0)), src.currency),
    )


def _effective_held(using: str, src: Account, now: datetime) -> Decimal:
    """The source's held amount, without holds past their expiry (one query, only if held)."""
    held = _amount(src, "held")
    if held:
        lapsed = (
            Hold.objects.using(using)
            .filter(source=src.pk)
            .past_expiry(now)
            .aggregate(total=Sum("amount"))["total"]
        )
        held -= lapsed or 0
    return held


def _check_reversal_shape(parent: Any, source_id: int, destination_id: int) -> None:
    """Refuse what can never be a reversal; these facts of a transfer never change."""
    if not isinstance(parent, Transfer) or parent.pk is None:
        raise InvalidArgument(_("%(parent)r is not a saved transfer."), parent=parent)
    if parent.parent_id is not None:
        raise InvalidReversal(
            _("Transfer %(transfer)s is itself a reversal and cannot be reversed."),
            transfer=parent,
        )
    if (parent.source_id, parent.destination_id) != (destination_id, source_id):
        raise InvalidReversal(
            _(
                "A reversal of transfer %(transfer)s must move money from its destination "
                "back to its source."
            ),
            transfer=parent,
        )


def _check_reversal(using: str, parent: Transfer, value: Decimal | None) -> Decimal:
    """Check a reversal under the account locks and return the amount to move.

    Both accounts of the original are locked by now, so two reversals of the
    same transfer run one after the other and the second sees the first.
    """
    reversed_total = (
        Transfer.objects.using(using)
        .filter(parent=parent.pk)
        .aggregate(total=Sum("amount"))["total"]
    )
    remaining = parent.amount.amount - (reversed_total or 0)
    if remaining <= 0:
        raise InvalidReversal(
            _("Transfer %(transfer)s has already been fully reversed."), transfer=parent
        )
    if value is None:
        return remaining
    if value > remaining:
        raise InvalidReversal(
            _(
                "Cannot reverse %(amount)s of transfer %(transfer)s: only %(remaining)s "
                "is left to reverse."
            ),
            transfer=parent,
            amount=amounts.money(value, parent.currency),
            remaining=amounts.money(remaining, parent.currency),
        )
    return value


def _check_initial_value(destination: Account, value: Decimal, new_balance: Decimal) -> None:
    minimum, maximum = conf.MIN_INITIAL_VALUE, conf.MAX_INITIAL_VALUE
    if minimum is not None and value < minimum:
        raise InvalidAmount(
            _("A top-up must be at least %(minimum)s (got %(amount)s)."),
            minimum=amounts.money(minimum, destination.currency),
            amount=amounts.money(value, destination.currency),
        )
    if maximum is not None and new_balance > maximum:
        raise InvalidAmount(
            _(
                "A top-up of %(amount)s would bring account %(account)s to %(balance)s, "
                "above the maximum of %(maximum)s."
            ),
            amount=amounts.money(value, destination.currency),
            account=destination,
            balance=amounts.money(new_balance, destination.currency),
            maximum=amounts.money(maximum, destination.currency),
        )


# Idempotency -------------------------------------------------------------------------


def _after_key_race(model: Any, using: str, key: str | None, error: IntegrityError) -> Any:
    """After an IntegrityError: the row a concurrent call committed with ``key``.

    Re-raises ``error`` when there is no such row (the error had another cause).
    """
    existing = None
    if key is not None:
        existing = model.objects.using(using).filter(idempotency_key=key).first()
    if existing is None:
        raise error
    return existing


def _replay(
    existing: Transfer,
    key: str,
    source_id: int,
    destination_id: int,
    value: Decimal | None,
    currency: str | None,
    parent: Transfer | None,
    allow_partial: bool = False,
) -> Transfer:
    """Answer a repeated call: the original transfer, or ``IdempotencyConflict``."""
    moved = existing.amount.amount
    same_amount = value is None or moved == value or (allow_partial and moved <= value)
    same = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and same_amount
        and (currency is None or existing.currency == currency)
        and existing.parent_id == (parent.pk if parent is not None else None)
    )
    if not same:
        raise IdempotencyConflict(key=key, existing=existing)
    return existing


def _replay_hold(
    existing: Hold,
    key: str,
    source_id: int,
    destination_id: int,
    value: Decimal,
    currency: str | None,
) -> Hold:
    same = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and existing.amount.amount == value
        and (currency is None or existing.currency == currency)
    )
    if not same:
        raise IdempotencyConflict(key=key, existing=existing)
    return existing


def _replay_capture(existing: Transfer, key: str, locked: Hold, value: Decimal | None) -> Transfer:
    if locked.capture_id != existing.pk or (value is not None and existing.amount.amount != value):
        raise IdempotencyConflict(key=key, existing=existing)
    return existing


# Arguments ---------------------------------------------------------------------------


def _check_hold(hold: Any) -> None:
    if not isinstance(hold, Hold) or hold.pk is None:
        raise InvalidArgument(_("%(hold)r is not a saved hold."), hold=hold)


def _copy_resolution(locked: Hold, hold: Hold) -> None:
    for name in ("status", "resolved_at", "resolved_by", "capture_id"):
        setattr(hold, name, getattr(locked, name))


def _account_id(account: Any, role: Any) -> int:
    if isinstance(account, Account):
        if account.pk is None:
            raise InvalidAccount(
                _("The %(role)s account is not saved yet; save it before moving money."),
                role=role,
            )
        return account.pk
    if isinstance(account, int) and not isinstance(account, bool):
        return account
    raise InvalidAccount(
        _("The %(role)s must be an Account, got %(account)r."), role=role, account=account
    )


def _amount(account: Account, name: str) -> Decimal:
    """A locked row's balance, held amount or credit limit, as a plain Decimal."""
    return amounts.raw(account, name)  # type: ignore[return-value]


def _saved_user(user: Any) -> Any:
    return user if getattr(user, "pk", None) else None


def _username(user: Any) -> str:
    return user.get_username() if getattr(user, "pk", None) else ""


def _text(value: Any, what: Any, max_length: int | None, *, allow_empty: bool = True) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(
            _("%(what)s must be a string, got %(value)r."), what=what, value=value
        )
    if not allow_empty and not value:
        raise InvalidArgument(_("%(what)s must not be empty."), what=what)
    if max_length is not None and len(value) > max_length:
        raise InvalidArgument(
            _("%(what)s is %(length)s characters long; the most is %(max)s."),
            what=what,
            length=len(value),
            max=max_length,
        )
    return value
