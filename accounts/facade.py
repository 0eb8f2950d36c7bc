"""
The public write API of the ledger: ``transfer``, ``reverse``, ``hold``,
``capture`` and ``release``.

Every change to balances and held amounts goes through :func:`_locked`, the
one locked, atomic way in. Each operation

1. refuses bad input before touching the database (nothing is written);
2. opens ``transaction.atomic()`` and locks the account rows it touches, in
   primary-key order, re-reading them and the database's clock
   (``accounts.sql.lock_accounts``, ``accounts.clock``);
3. checks currency, status, dates, funds and the operation's own rules on
   those rows, at that moment;
4. writes the transfer and its two legs (:func:`_write_transfer`, the only
   code that creates them) or the hold, and the new balances / held amounts.

The trust boundary. What each decision reads, and from where:

* accounts' status, dates, currency, balance, held amount and credit limit:
  the locked account rows;
* a transfer being reversed (amount, accounts, currency, parent, merchant
  reference) and what was already reversed: read from the database by
  primary key (those columns never change: the database refuses it);
* a hold's accounts: read by primary key before locking (they never change);
  its amount, status and expiry: the hold's row, locked after the accounts;
* the time: the database's clock, read with the locks (``accounts.clock``);
* an idempotency key: the stored row with that key, compared exactly (an
  exact collation on MariaDB/MySQL) and answered only for an identical request
  (``accounts.idempotency``).

Instances passed in (``Account``, ``Transfer``, ``Hold``) are used for their
primary key only; whatever else they hold in memory is ignored, and the
``Account`` instances passed get the balance and held amount written.

The atomic block becomes a savepoint when the caller already has a
transaction open: if the caller rolls back, the operation is rolled back
with it.

Invariants protected here:

* the legs of a transfer sum to zero, and each records its account's new
  balance, written under the same lock as the balance;
* for an account with a credit limit, ``balance − held ≥ −credit_limit``
  after every debit and every new hold. Holds past their expiry no longer
  count as held: the debit that finds them marks them expired in the same
  transaction, so no later operation can capture money that was spent;
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
* Leaving holds past their expiry active until a sweep: a debit then spends
  money that a capture judging by a slightly earlier clock still takes.
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
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, idempotency, signals, sql
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

logger = logging.getLogger(__name__)

__all__ = ["transfer", "reverse", "hold", "capture", "release"]


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
    is the caller's job. With an ``idempotency_key``, repeating exactly the
    same call returns the original transfer and writes nothing; the same key
    with any other argument raises ``IdempotencyConflict``. With
    ``allow_partial=True`` the transfer moves as much of ``amount`` as the
    source can cover right now (at least one minor unit) and records what
    it moved.

    On success the instances passed in get their new ``balance`` and
    ``held``. The ``transfer_posted`` signal is sent once the outermost
    transaction commits.

    Raises ``InvalidAmount``, ``InvalidAccount``, ``SameAccount``,
    ``InvalidArgument``, ``CurrencyMismatch``, ``ClosedAccount``,
    ``FrozenAccount``, ``AccountExpired``, ``AccountNotYetActive``,
    ``InsufficientFunds``, ``InvalidReversal`` (with ``parent``) and
    ``IdempotencyConflict``; all subclass ``AccountException``, and none
    leaves anything written.
    """
    if allow_partial and parent is not None:
        raise InvalidArgument(_("A reversal cannot be partial-by-funds (allow_partial)."))
    source_id = _account_id(source, _("source"))
    destination_id = _account_id(destination, _("destination"))
    if source_id == destination_id:
        raise SameAccount(account=source)
    value, currency = amounts.parse_amount(amount)
    using = router.db_for_write(Transfer)
    original = None
    if parent is not None:
        original = _saved_transfer(using, parent)
        _check_reversal_shape(original, source_id, destination_id)
    request = _Request(
        "transfer",
        user=user,
        merchant_reference=merchant_reference,
        description=description,
        idempotency_key=idempotency_key,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
        parent=original.pk if original else None,
        allow_partial=bool(allow_partial),
    )
    return _post(
        using, source, destination, source_id, destination_id, value, currency, original, request
    )


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
    usable). ``merchant_reference`` defaults to the original's. Everything
    about the original is read from the database: only the primary key of
    ``transfer`` is used.

    Raises ``InvalidReversal`` when the transfer is itself a reversal, is
    already fully reversed, or ``amount`` exceeds what is left (also when two
    reversals race), and every error :func:`transfer` raises.
    """
    using = router.db_for_write(Transfer)
    original = _saved_transfer(using, transfer)
    _check_reversal_shape(original, original.destination_id, original.source_id)
    value, currency = (None, None) if amount is None else amounts.parse_amount(amount)
    request = _Request(
        "reverse",
        user=user,
        merchant_reference=merchant_reference,
        description=description,
        idempotency_key=idempotency_key,
        transfer=original.pk,
        amount=value,
        currency=currency,
    )
    if merchant_reference is None:
        request.merchant_reference = original.merchant_reference
    return _post(
        using,
        None,
        None,
        original.destination_id,
        original.source_id,
        value,
        currency,
        original,
        request,
    )


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
    ``expires_at`` (an aware datetime, later than the database's clock;
    ``None``: never) the hold no longer reserves anything and cannot be
    captured. With an ``idempotency_key``, repeating exactly the same call
    returns the original hold.

    Raises the same errors as :func:`transfer` (``InsufficientFunds`` when the
    source cannot cover it), and ``InvalidArgument`` for an ``expires_at``
    that is not an aware datetime in the future.
    """
    source_id = _account_id(source, _("source"))
    destination_id = _account_id(destination, _("destination"))
    if source_id == destination_id:
        raise SameAccount(account=source)
    value, currency = amounts.parse_amount(amount)
    if expires_at is not None and (
        not isinstance(expires_at, datetime) or timezone.is_naive(expires_at)
    ):
        raise InvalidArgument(
            _("expires_at %(expires_at)r must be an aware datetime in the future, or None."),
            expires_at=expires_at,
        )
    request = _Request(
        "hold",
        user=user,
        merchant_reference=merchant_reference,
        description=description,
        idempotency_key=idempotency_key,
        source=source_id,
        destination=destination_id,
        amount=value,
        currency=currency,
        expires_at=expires_at,
    )
    using = router.db_for_write(Hold)
    try:
        with _locked(using, [source_id, destination_id]) as (rows, now):
            src, dst = rows[source_id], rows[destination_id]
            existing = idempotency.find(Hold, using, request.key)
            if existing is not None:
                return _replay_hold(existing, request, source_id, destination_id, value)
            if expires_at is not None and expires_at <= now:
                raise InvalidArgument(
                    _(
                        "expires_at %(expires_at)s must be an aware datetime in the future "
                        "(the database's clock says %(now)s)."
                    ),
                    expires_at=expires_at,
                    now=now,
                )
            _check_pair(src, dst, currency, now)
            amounts.check_places(value, src.currency)
            _check_funds(using, src, value, now)
            if src.role == Account.Role.SOURCE:
                _check_initial_value(dst, value, _amount(dst, "balance") + value)
            placed = Hold(
                source_id=source_id,
                destination_id=destination_id,
                currency=src.currency,
                amount=value,
                expires_at=expires_at,
                merchant_reference=request.merchant_reference,
                description=request.description or "",
                user=_saved_user(user),
                username=_username(user),
                idempotency_key=request.key,
                request_fingerprint=request.fingerprint(),
                created=now,
            )
            sql.insert(using, placed)
            held = _amount(src, "held") + value
            _check_storable(held)
            sql.write_ledger_fields(using, {source_id: {"held": held}})
            src.__dict__["held"] = held
            _on_commit(using, signals.hold_created, Hold, hold=placed)
    except IntegrityError as error:
        existing = idempotency.after_race(Hold, using, request.key, error)
        return _replay_hold(existing, request, source_id, destination_id, value)
    _update_instances(rows, source, destination)
    return placed


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
    merchant reference. With an ``idempotency_key``, repeating exactly the
    same capture returns the same transfer. Only the primary key of
    ``hold`` is used; its amount, accounts, status and expiry are read from
    its locked row.

    Raises ``HoldResolved`` (already captured, released or expired),
    ``HoldExpired`` (past ``expires_at``), ``CaptureExceedsHold``,
    ``InvalidAmount``, ``CurrencyMismatch``, ``InactiveAccount`` subclasses
    and ``IdempotencyConflict``.
    """
    hold_id = _check_hold(hold)
    value, currency = (None, None) if amount is None else amounts.parse_amount(amount)
    request = _Request(
        "capture",
        user=user,
        description=description,
        idempotency_key=idempotency_key,
        hold=hold_id,
        amount=value,
        currency=currency,
    )
    using = router.db_for_write(Hold)
    source_id, destination_id = _hold_accounts(using, hold_id)
    try:
        with _locked(using, [source_id, destination_id]) as (rows, now):
            locked = _locked_holds(using).get(pk=hold_id)
            src, dst = rows[source_id], rows[destination_id]
            existing = idempotency.find(Transfer, using, request.key)
            if existing is not None:
                return _replay_capture(existing, request, locked, value)
            if locked.status != Hold.Status.ACTIVE:
                raise HoldResolved(hold=locked, status=locked.get_status_display().lower())
            if locked.expires_at is not None and locked.expires_at <= now:
                raise HoldExpired(hold=locked, expires_at=locked.expires_at)
            amounts.check_same_currency(currency, locked.currency, what=_("The amount"))
            held_amount = _amount(locked, "amount")
            value = held_amount if value is None else value
            amounts.check_places(value, locked.currency)
            if value > held_amount:
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
                _check_initial_value(dst, value, _amount(dst, "balance") + value)
            captured = _write_transfer(
                using,
                src,
                dst,
                value,
                now,
                parent=None,
                user=user,
                merchant_reference=locked.merchant_reference,
                description=locked.description if description is None else description,
                key=request.key,
                fingerprint=request.fingerprint(),
                source_columns={"held": _amount(src, "held") - held_amount},
            )
            _resolve(using, [locked], Hold.Status.CAPTURED, user, now, capture=captured)
    except IntegrityError as error:
        existing = idempotency.after_race(Transfer, using, request.key, error)
        return _replay_capture(existing, request, Hold.objects.using(using).get(pk=hold_id), value)
    _copy_resolution(locked, hold)
    return captured


def release(hold: Hold, *, user: Any = None) -> Hold:
    """Free the money an active hold reserves, without moving any.

    A hold past its expiry that nothing has marked expired yet can still be
    released. Only the primary key of ``hold`` is used. Raises
    ``HoldResolved`` if the hold was already captured, released or expired.
    """
    hold_id = _check_hold(hold)
    using = router.db_for_write(Hold)
    source_id, _destination_id = _hold_accounts(using, hold_id)
    with _locked(using, [source_id]) as (rows, now):
        locked = _locked_holds(using).get(pk=hold_id)
        if locked.status != Hold.Status.ACTIVE:
            raise HoldResolved(hold=locked, status=locked.get_status_display().lower())
        _free(using, rows[source_id], [locked], Hold.Status.RELEASED, user, now)
    _copy_resolution(locked, hold)
    return hold


def expire_hold(hold: Hold, *, now: datetime | None = None) -> bool:
    """Mark one hold past its expiry as expired and free what it reserved.

    Expiry is judged at ``now``, but never later than the database's clock
    under the lock: a cut-off in the future cannot expire a hold that is
    not due. Returns False (and changes nothing) if the hold is no longer
    active or not yet past its expiry when checked under the lock, so two
    sweeps running at once expire each hold once. Used by
    ``accounts.expiry.release_expired_holds``.
    """
    hold_id = _check_hold(hold)
    using = router.db_for_write(Hold)
    source_id, _destination_id = _hold_accounts(using, hold_id)
    with _locked(using, [source_id]) as (rows, clock):
        cutoff = clock if now is None else min(now, clock)
        locked = _locked_holds(using).get(pk=hold_id)
        if (
            locked.status != Hold.Status.ACTIVE
            or locked.expires_at is None
            or locked.expires_at > cutoff
        ):
            return False
        _free(using, rows[source_id], [locked], Hold.Status.EXPIRED, None, clock)
    _copy_resolution(locked, hold)
    return True


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
    using = router.db_for_write(Account, instance=account)
    with _locked(using, [account.pk]) as (rows, _now):
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
            locked.status = status
    _update_instances(rows, account)
    account.status = status
    account._remember(["status"])


@dataclass(frozen=True)
class Expiry:
    """What :func:`expire_account` did with one account."""

    #: "swept" (balance moved, closed), "closed" (zero balance, closed),
    #: "debt" (negative balance: left open, its holds lapsed), "frozen" (left
    #: alone), or "skipped" (closed, core or no longer expired when checked
    #: under the lock).
    outcome: str
    #: The balance moved ("swept") or owed ("debt").
    amount: Any = None
    #: Active holds that lapsed with the account.
    holds_expired: int = 0
    transfer: Transfer | None = None


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
    the debt stays visible (its holds lapse all the same). A frozen, closed
    or core account, or one whose end date is no longer past the cut-off, is
    left untouched. The cut-off is ``now``, but never later than the
    database's clock under the lock. Used by
    ``accounts.expiry.close_expired_accounts``; safe to call concurrently
    (each account is swept once). ``sink``, the expired core account of the
    account's currency, saves a query when the caller already has it (only
    its primary key is used; it is checked under the lock).
    """
    account_id = _account_id(account, _("expired"))
    using = router.db_for_write(Account)
    currency = (
        Account.objects.using(using).filter(pk=account_id).values_list("currency", flat=True)
    ).first()
    if currency is None:
        raise InvalidAccount(
            _("Account %(account)s does not exist (was it deleted?)."), account=account_id
        )
    sink_id = _account_id(sink, _("expired")) if sink is not None else None
    if sink_id is None:
        sink_id = Account.objects.db_manager(using).expired_account(currency).pk
    with _locked(using, [account_id, sink_id]) as (rows, clock):
        cutoff = clock if now is None else min(now, clock)
        locked, expired = rows[account_id], rows[sink_id]
        if expired.role != Account.Role.EXPIRED:
            raise InvalidArgument(
                _("Account %(account)s is not an expired core account."), account=expired
            )
        if (
            locked.is_core
            or locked.status == Account.Status.CLOSED
            or locked.currency != expired.currency
            or not (locked.end_date and locked.end_date < cutoff)
        ):
            return Expiry("skipped")
        if locked.status == Account.Status.FROZEN:
            return Expiry("frozen")
        lapsed = _lapse_holds(using, locked, clock)
        balance = _amount(locked, "balance")
        if balance < 0:
            if lapsed:
                sql.write_ledger_fields(using, {account_id: {"held": Decimal(0)}})
            return Expiry("debt", amount=locked.balance, holds_expired=lapsed)
        closed = {"status": Account.Status.CLOSED, "held": Decimal(0)}
        swept = None
        if balance > 0:
            _check_pair(locked, expired, None, clock, skip_window=True)
            # The sweep and the close are one statement: the account's row
            # gets its zero balance and its closed status together.
            swept = _write_transfer(
                using,
                locked,
                expired,
                balance,
                clock,
                parent=None,
                user=None,
                merchant_reference=None,
                description=description
                or str(
                    _("Balance of expired account %(account)s (expired %(end)s)")
                    % {"account": locked, "end": locked.end_date.isoformat()}
                ),
                key=None,
                fingerprint=None,
                source_columns=closed,
            )
        else:
            sql.write_ledger_fields(using, {account_id: closed})
            locked.__dict__.update(closed)
    _update_instances(rows, account)
    if isinstance(account, Account):
        account.status = Account.Status.CLOSED
        account._remember(["status"])
    if swept is None:
        return Expiry("closed", holds_expired=lapsed)
    return Expiry(
        "swept", amount=amounts.money(balance, currency), holds_expired=lapsed, transfer=swept
    )


# The write path ---------------------------------------------------------------


class _Request:
    """One call as the caller made it: checked arguments, and its idempotency fingerprint."""

    def __init__(
        self,
        operation: str,
        *,
        user: Any,
        idempotency_key: Any,
        description: Any,
        merchant_reference: Any = None,
        **details: Any,
    ) -> None:
        self.operation = operation
        self.user = _saved_user(user)
        self.key = arguments.text(idempotency_key, _("Idempotency key"), 128, allow_empty=False)
        self.merchant_reference = arguments.text(merchant_reference, _("Merchant reference"), 128)
        self.description = arguments.text(description, _("Description"), None)
        self.details = details
        self._given_merchant_reference = self.merchant_reference

    def fingerprint(self) -> str | None:
        """The request's fingerprint (``None`` without a key: nothing will compare it)."""
        if self.key is None:
            return None
        return idempotency.fingerprint(
            self.operation,
            user=self.user,
            merchant_reference=self._given_merchant_reference,
            description=self.description,
            **self.details,
        )


@contextmanager
def _locked(
    using: str, account_ids: Iterable[int]
) -> Iterator[tuple[dict[int, Account], datetime]]:
    """Open the atomic block, allow ledger writes and lock the accounts, in pk order.

    The only way into the ledger: every operation above runs inside it.
    Yields the locked rows by primary key and the database's time, read once
    the locks were granted. Raises ``InvalidAccount`` if an account does not
    exist.
    """
    ids = list(account_ids)
    with transaction.atomic(using=using):
        token = posting.set(True)
        try:
            rows, now = sql.lock_accounts(using, ids)
            missing = set(ids) - rows.keys()
            if missing:
                raise InvalidAccount(
                    _("Account %(account)s does not exist (was it deleted?)."),
                    account=min(missing),
                )
            yield rows, now
        finally:
            posting.reset(token)


def _locked_holds(using: str) -> Any:
    """Holds to read ``FOR UPDATE``, once their accounts are locked (``NOWAIT`` in the sweeps)."""
    return Hold.objects.using(using).select_for_update(nowait=sql.nowait.get())


def _post(
    using: str,
    source: Any,
    destination: Any,
    source_id: int,
    destination_id: int,
    value: Decimal | None,
    currency: str | None,
    parent: Transfer | None,
    request: _Request,
) -> Transfer:
    """Post one transfer (or reversal, with ``parent``, read from the database).

    ``value=None`` is accepted for reversals only (reverse what is left).
    """
    try:
        with _locked(using, [source_id, destination_id]) as (rows, now):
            src, dst = rows[source_id], rows[destination_id]
            existing = idempotency.find(Transfer, using, request.key)
            if existing is not None:
                return _replay(existing, request, source_id, destination_id, value, parent)
            _check_pair(src, dst, currency, now)
            if parent is not None:
                value = _check_reversal(using, parent, value)
            assert value is not None
            amounts.check_places(value, src.currency)
            held = _amount(src, "held")
            value = _check_funds(
                using, src, value, now, allow_partial=bool(request.details.get("allow_partial"))
            )
            if src.role == Account.Role.SOURCE:
                # Money from the source: a top-up, or a withdrawal reversed.
                _check_initial_value(
                    dst, value, _amount(dst, "balance") + value, top_up=parent is None
                )
            posted = _write_transfer(
                using,
                src,
                dst,
                value,
                now,
                parent=parent,
                user=request.user,
                merchant_reference=request.merchant_reference,
                description=request.description or "",
                key=request.key,
                fingerprint=request.fingerprint(),
                # Holds that lapsed in the funds check free what they held.
                source_columns=(
                    {"held": _amount(src, "held")} if _amount(src, "held") != held else None
                ),
            )
    except IntegrityError as error:
        # A concurrent call with the same key committed first (the unique
        # index made this insert wait for it): answer as a repeat would.
        existing = idempotency.after_race(Transfer, using, request.key, error)
        return _replay(existing, request, source_id, destination_id, value, parent)
    _update_instances(rows, source, destination)
    return posted


def _write_transfer(
    using: str,
    src: Account,
    dst: Account,
    value: Decimal,
    now: datetime,
    *,
    parent: Transfer | None,
    user: Any,
    merchant_reference: str | None,
    description: str,
    key: str | None,
    fingerprint: str | None,
    source_columns: dict[str, Any] | None = None,
) -> Transfer:
    """Write a transfer, its two legs and both balances. Call only inside :func:`_locked`.

    ``src`` and ``dst`` are the locked rows; their ``balance`` (and the
    source's other ``source_columns``, e.g. ``held``, written in the same
    statement) are updated in memory to what was written. The rows are
    stamped with ``now``, the database's time read under the lock, so on
    each account ``created`` follows the posting order (never a caller's "as
    of" time, which would misplace the rows in history).
    """
    new_source = _amount(src, "balance") - value
    new_destination = _amount(dst, "balance") + value
    _check_storable(new_source, value)
    _check_storable(new_destination, value)
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
        request_fingerprint=fingerprint,
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


def _free(
    using: str, src: Account, holds: list[Hold], status: str, user: Any, now: datetime
) -> None:
    """Release or expire locked active holds: give their amounts back to the source."""
    held = _amount(src, "held") - sum((_amount(h, "amount") for h in holds), Decimal(0))
    sql.write_ledger_fields(using, {src.pk: {"held": held}})
    src.__dict__["held"] = held
    _resolve(using, holds, status, user, now)


def _resolve(
    using: str, holds: list[Hold], status: str, user: Any, now: datetime, capture: Any = None
) -> None:
    """Record how locked active holds were resolved (one statement), and tell receivers."""
    columns: dict[str, Any] = {
        "status": status,
        "resolved_at": now,
        "resolved_by": _username(user),
    }
    if capture is not None:
        columns["capture"] = capture
    Hold.objects.using(using)._resolve([h.pk for h in holds], **columns)
    for resolved in holds:
        for name, value in columns.items():
            setattr(resolved, name, value)
        _on_commit(using, signals.hold_resolved, Hold, hold=resolved)


def _lapse_holds(using: str, locked: Account, now: datetime, *, past_expiry: bool = False) -> int:
    """Expire active holds on a locked account (only those past expiry, if asked).

    Updates the account's ``held`` in memory (the caller writes it with its
    other changes) and returns how many holds lapsed. No query when nothing
    is held.
    """
    if not _amount(locked, "held"):
        return 0
    holds = _locked_holds(using).filter(source=locked.pk, status=Hold.Status.ACTIVE)
    if past_expiry:
        holds = holds.filter(expires_at__lte=now)
    lapsed = list(holds.order_by("pk"))
    if lapsed:
        freed = sum((_amount(h, "amount") for h in lapsed), Decimal(0))
        locked.__dict__["held"] = _amount(locked, "held") - freed
        _resolve(using, lapsed, Hold.Status.EXPIRED, None, now)
    return len(lapsed)


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


def _update_instances(rows: dict[int, Account], *instances: Any) -> None:
    """Give the ``Account`` instances the caller passed what was written to their rows."""
    for instance in instances:
        if isinstance(instance, Account) and instance.pk in rows:
            row = rows[instance.pk]
            instance.__dict__["balance"] = _amount(row, "balance")
            instance.__dict__["held"] = _amount(row, "held")
            instance._remember(["balance", "held"])


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

    Holds on the source past their expiry are marked expired first (in this
    transaction), so they stop reserving money for every later operation
    too. Raises ``InsufficientFunds`` when the source cannot cover it.
    """
    limit = _amount(src, "credit_limit")
    if limit is None:
        return value
    _lapse_holds(using, src, now, past_expiry=True)
    available = _amount(src, "balance") + limit - _amount(src, "held")
    if value <= available:
        return value
    if allow_partial and available > 0:
        return available
    raise InsufficientFunds(
        account=src,
        amount=amounts.money(value, src.currency),
        available=amounts.money(max(available, Decimal(0)), src.currency),
    )


def _check_reversal_shape(parent: Transfer, source_id: int, destination_id: int) -> None:
    """Refuse what can never be a reversal; these facts of a transfer never change."""
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
    The reversals are summed in Python: SQLite would add them as floats.
    """
    reversed_total = sum(
        Transfer.objects.using(using).filter(parent=parent.pk).values_list("amount", flat=True),
        Decimal(0),
    )
    remaining = _amount(parent, "amount") - reversed_total
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


def _check_initial_value(
    destination: Account, value: Decimal, new_balance: Decimal, *, top_up: bool = True
) -> None:
    """A credit from the source account: the top-up limits.

    The minimum applies to top-ups only; the maximum balance to any credit
    from the source (a reversed withdrawal too).
    """
    minimum, maximum = conf.MIN_INITIAL_VALUE, conf.MAX_INITIAL_VALUE
    if top_up and minimum is not None and value < minimum:
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


def _check_storable(total: Decimal, value: Decimal | None = None) -> None:
    """Refuse a balance or held amount the ledger's columns cannot store exactly."""
    if abs(total) >= amounts.LIMIT:
        raise InvalidAmount(
            _("Amount %(amount)s would take a balance beyond what the ledger stores."),
            amount=value if value is not None else total,
        )


# Idempotency -------------------------------------------------------------------------


def _replay(
    existing: Transfer,
    request: _Request,
    source_id: int,
    destination_id: int,
    value: Decimal | None,
    parent: Transfer | None,
) -> Transfer:
    """Answer a repeated transfer or reversal: the original, or ``IdempotencyConflict``."""
    legacy = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and (value is None or _amount(existing, "amount") == value)
        and existing.parent_id == (parent.pk if parent is not None else None)
    )
    return idempotency.replay(existing, request.key, request.fingerprint(), legacy_match=legacy)


def _replay_hold(
    existing: Hold, request: _Request, source_id: int, destination_id: int, value: Decimal
) -> Hold:
    legacy = (
        existing.source_id == source_id
        and existing.destination_id == destination_id
        and _amount(existing, "amount") == value
    )
    return idempotency.replay(existing, request.key, request.fingerprint(), legacy_match=legacy)


def _replay_capture(
    existing: Transfer, request: _Request, locked: Hold, value: Decimal | None
) -> Transfer:
    legacy = locked.capture_id == existing.pk and (
        value is None or _amount(existing, "amount") == value
    )
    return idempotency.replay(existing, request.key, request.fingerprint(), legacy_match=legacy)


# Arguments ---------------------------------------------------------------------------


def _check_hold(hold: Any) -> int:
    if not isinstance(hold, Hold) or hold.pk is None:
        raise InvalidArgument(_("%(hold)r is not a saved hold."), hold=hold)
    return int(hold.pk)


def _hold_accounts(using: str, hold_id: int) -> tuple[int, int]:
    """A hold's source and destination, read from the database (they never change)."""
    found = (
        Hold.objects.using(using)
        .filter(pk=hold_id)
        .values_list("source_id", "destination_id")
        .first()
    )
    if found is None:
        raise InvalidArgument(_("Hold %(hold)s does not exist."), hold=hold_id)
    return found


def _saved_transfer(using: str, value: Any) -> Transfer:
    """The transfer ``value`` names, as stored (the instance is used for its pk only)."""
    if not isinstance(value, Transfer) or value.pk is None:
        raise InvalidArgument(_("%(parent)r is not a saved transfer."), parent=value)
    found = Transfer.objects.using(using).filter(pk=value.pk).first()
    if found is None:
        raise InvalidArgument(_("Transfer %(parent)s does not exist."), parent=value.pk)
    return found


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


def _amount(row: Any, name: str) -> Any:
    """A row's stored amount (balance, held, credit limit, a hold's amount) as a plain Decimal."""
    return amounts.raw(row, name)


def _saved_user(user: Any) -> Any:
    return user if getattr(user, "pk", None) else None


def _username(user: Any) -> str:
    return user.get_username() if getattr(user, "pk", None) else ""
