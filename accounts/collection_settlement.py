"""
Settling and failing debts: money that came back for a debt, or did not.

A settlement is a transfer from the run's source account into the debtor's
account through ``accounts.facade.transfer``, linked to the debt by a
``Settlement`` carrying the external reference (the idempotency key). The
locks taken, and what each decision reads, are described in
:mod:`accounts.collections`.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.db import router
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from . import amounts, arguments, facade, posting
from .collection_models import CollectionRun, Debt, Settlement
from .collection_runs import OPEN, account_of, copy_debt, finish_locked, locked_debt
from .exceptions import (
    DebtResolved,
    IdempotencyConflict,
    InvalidArgument,
    SettlementExceedsDebt,
)
from .idempotency import fingerprint
from .models import Transfer
from .retry import retry_on_conflict
from .signals import debt_failed, debt_settled

__all__ = ["settle", "fail", "REFERENCE_LENGTH", "KEY_PREFIX"]

#: Longest external reference; the transfer's idempotency key is built from it.
REFERENCE_LENGTH = 100
#: Prefix of the idempotency key of a settlement's transfer.
KEY_PREFIX = "collection:"


@retry_on_conflict
def settle(
    debt: Debt,
    amount: Money | Decimal,
    *,
    reference: str,
    user: arguments.User = None,
    description: str | None = None,
) -> Transfer:
    """Record money that came back for a debt, and return the transfer that recorded it.

    Moves ``amount`` (a ``Money``, or a ``Decimal`` in the debt's currency)
    from the run's source account into the debtor's account with
    ``accounts.facade.transfer`` (``merchant_reference`` is ``reference``),
    and adds it to what the debt recovered. Less than the debt still owes is
    a partial settlement: the debt stays open (initiated) for the rest; the
    whole of it makes the debt succeeded. ``reference`` is the payment's
    external reference (at most 100 characters, unique): recording the same
    settlement again returns the same transfer and writes nothing; the same
    reference with any other argument, or for another debt, raises
    ``IdempotencyConflict``. ``debt_settled`` is sent once committed.

    Decided under the locks of the source and debtor accounts, then the
    debt, then its run, in one atomic block. Raises ``DebtResolved`` (the
    debt succeeded or failed already), ``SettlementExceedsDebt``,
    ``IdempotencyConflict``, ``InvalidAmount``, ``CurrencyMismatch``,
    ``InvalidArgument`` and whatever ``facade.transfer`` raises (an account
    closed or frozen, say); nothing is written when it raises.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    value, currency = amounts.parse_amount(amount)
    checked = arguments.text(
        reference, _("External reference"), REFERENCE_LENGTH, allow_empty=False
    )
    if checked is None:
        raise InvalidArgument(_("A settlement needs its external reference (reference=...)."))
    reference = checked
    description = arguments.text(description, _("Description"), None)
    saved_user = arguments.saved_user(user)
    using = router.db_for_write(Debt)
    facts = (
        Debt.objects.using(using)
        .filter(pk=debt_id)
        .values_list("account_id", "run__source_id", "run__reference")
        .first()
    )
    if facts is None:
        raise InvalidArgument(_("Debt %(debt)s does not exist."), debt=debt_id)
    account_id, source_id, run_reference = facts
    digest = fingerprint(
        "settle",
        debt=debt_id,
        amount=value,
        currency=currency,
        user=saved_user.pk if saved_user is not None else None,
        description=description,
    )
    key = KEY_PREFIX + reference
    with posting.locked(using, [source_id, account_id]):
        locked = locked_debt(using, debt_id)
        existing = Settlement.objects.using(using).filter(reference=reference).first()
        if existing is not None:
            if existing.debt_id == debt_id and existing.request_fingerprint == digest:
                copy_debt(locked, debt)
                replayed: Transfer = Transfer.objects.using(using).get(pk=existing.transfer_id)
                return replayed
            raise IdempotencyConflict(key=reference, existing=existing.transfer)
        taken = Transfer.objects.using(using).filter(idempotency_key=key).first()
        if taken is not None:
            raise IdempotencyConflict(key=reference, existing=taken)
        _check_open(locked)
        amounts.check_same_currency(currency, locked.currency, what=_("The amount"))
        amounts.check_places(value, locked.currency)
        owed, recovered = posting.amount(locked, "amount"), posting.amount(locked, "recovered")
        if value > owed - recovered:
            raise SettlementExceedsDebt(
                debt=locked,
                amount=amounts.money(value, locked.currency),
                remaining=amounts.money(owed - recovered, locked.currency),
            )
        recorded = facade.transfer(
            source_id,
            account_id,
            value,
            user=saved_user,
            merchant_reference=reference,
            description=description
            or str(
                _("Collected for debt #%(debt)s (collection run %(run)s)")
                % {"debt": debt_id, "run": run_reference}
            ),
            idempotency_key=key,
        )
        now = recorded.created  # the moment the money came in
        new_recovered = recovered + value
        status = Debt.Status.SUCCEEDED if new_recovered == owed else Debt.Status.INITIATED
        columns: dict[str, Any] = {
            "status": status,
            "recovered": new_recovered,
            "external_reference": reference,
            "resolved_by": posting.username(saved_user),
            "resolved_at": now if status == Debt.Status.SUCCEEDED else None,
        }
        if locked.status == Debt.Status.PENDING:
            columns["initiated_at"] = now
        run = _locked_run(using, locked)
        initiated = posting.amount(run, "total_initiated")
        if locked.status == Debt.Status.INITIATED:
            initiated -= value
        elif status == Debt.Status.INITIATED:
            initiated += owed - new_recovered  # partly settled before it was initiated
        Settlement(
            debt_id=debt_id,
            transfer=recorded,
            reference=reference,
            request_fingerprint=digest,
            created=now,
        )._record(using)
        _resolve(
            using,
            locked,
            columns,
            run,
            now,
            total_initiated=initiated,
            total_recovered=posting.amount(run, "total_recovered") + value,
        )
        posting.after_commit(using, debt_settled, Debt, debt=locked, transfer=recorded)
    copy_debt(locked, debt)
    return recorded


@retry_on_conflict
def fail(debt: Debt, reason: str, *, user: arguments.User = None) -> Debt:
    """Mark an open debt failed: what it still owes is owed again in the next run.

    ``reason`` (required) says why, e.g. the payment provider's return
    code. A debt partly settled keeps what it recovered. ``debt_failed`` is
    sent once committed. Decided under the locks of the debt's account, the
    debt, then its run.
    Raises ``DebtResolved`` (it succeeded or failed already) and
    ``InvalidArgument``; nothing is written when it raises. Returns the
    debt passed in, with its new status.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    checked = arguments.text(reason, _("Failure reason"), None, allow_empty=False)
    if checked is None or not checked.strip():
        raise InvalidArgument(_("A failed debt needs its reason (reason=...)."))
    reason = checked
    saved_user = arguments.saved_user(user)
    using = router.db_for_write(Debt)
    with posting.locked(using, [account_of(using, debt_id)]) as lock:
        locked = locked_debt(using, debt_id)
        _check_open(locked)
        now = lock.now
        left = posting.amount(locked, "amount") - posting.amount(locked, "recovered")
        columns: dict[str, Any] = {
            "status": Debt.Status.FAILED,
            "failure_reason": reason,
            "resolved_at": now,
            "resolved_by": posting.username(saved_user),
        }
        run = _locked_run(using, locked)
        initiated = posting.amount(run, "total_initiated")
        if locked.status == Debt.Status.INITIATED:
            initiated -= left
        _resolve(
            using,
            locked,
            columns,
            run,
            now,
            total_initiated=initiated,
            total_failed=posting.amount(run, "total_failed") + left,
        )
        posting.after_commit(using, debt_failed, Debt, debt=locked)
    copy_debt(locked, debt)
    return debt


def _check_open(locked: Debt) -> None:
    """Refuse a debt (its locked row) that succeeded or failed already."""
    if locked.status not in OPEN:
        raise DebtResolved(debt=locked, status=locked.get_status_display().lower())


def _locked_run(using: str, locked: Debt) -> CollectionRun:
    """The run of a locked debt, locked (after the debt: the lock order)."""
    return CollectionRun.objects.using(using).select_for_update().get(pk=locked.run_id)


def _resolve(
    using: str,
    locked: Debt,
    columns: dict[str, Any],
    run: CollectionRun,
    now: datetime.datetime,
    **totals: Decimal,
) -> None:
    """Write a locked debt's new columns and its locked run's new totals.

    The locked row gets the values written; the run is finished if no debt
    of it is open any more.
    """
    Debt.objects.using(using)._write(locked.pk, **columns)
    CollectionRun.objects.using(using)._write(run.pk, **totals)
    for name, value in columns.items():
        setattr(locked, name, value)
    finish_locked(using, run, now)
